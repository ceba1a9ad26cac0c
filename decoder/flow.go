package decoder

import (
	"errors"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// FlowConfig configures IPFIX and NetFlow v9 decoding. (Stub: replaced by the IPFIX work.)
type FlowConfig struct{}

// DefaultFlowConfig returns the defaults.
func DefaultFlowConfig() FlowConfig { return FlowConfig{} }

// Validate checks the configuration.
func (c FlowConfig) Validate() error { return nil }

type flowDecoder struct{}

func newFlowDecoder(cfg FlowConfig, reg prometheus.Registerer) (*flowDecoder, error) {
	return &flowDecoder{}, nil
}

// Decode decodes one IPFIX (src == SourceIPFIX) or NetFlow v9 datagram into b.
func (f *flowDecoder) Decode(src Source, from netip.AddrPort, data []byte, received int64, b *Batch) error {
	return errors.New("not implemented")
}
