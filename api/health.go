package api

import "github.com/vmflow/vmflow/aggregate"

// connHealthOut is a pair's connection health estimated from the sampled
// TCP flags (no probe needed): its SYNs against the SYN-ACKs and RSTs of
// the reverse pair (aggregate.Stats.Health).
type connHealthOut struct {
	SYN           float64    `json:"syn"`
	SYNACK        float64    `json:"synack_in"`
	RST           float64    `json:"rst_in"`
	SampledSYN    float64    `json:"sampled_syn"`
	SampledSYNACK float64    `json:"sampled_synack_in"`
	SampledRST    float64    `json:"sampled_rst_in"`
	FailureRatio  float64    `json:"failure_ratio"`
	FailureCI95   [2]float64 `json:"failure_ci95"`
	RefusedRatio  float64    `json:"refused_ratio"`
	RefusedCI95   [2]float64 `json:"refused_ci95"`
}

func connHealthOf(st *aggregate.Stats) *connHealthOut {
	h, ok := st.Health(0)
	if !ok {
		return nil
	}
	return &connHealthOut{SYN: h.SYN, SYNACK: h.SYNACK, RST: h.RST,
		SampledSYN: h.SampledSYN, SampledSYNACK: h.SampledSYNACK, SampledRST: h.SampledRST,
		FailureRatio: h.FailureRatio, FailureCI95: h.FailureCI95, RefusedRatio: h.RefusedRatio, RefusedCI95: h.RefusedCI95}
}

// connHealthSchema is the OpenAPI schema of connHealthOut.
func connHealthSchema() obj {
	return object("Connection health estimated without a probe, from the sampled TCP flags: this pair's SYNs against the SYN-ACKs (accepted) "+
		"and RSTs (refused) of the reverse pair in the same windows and export protocol. Absent when the pair sent no SYN. "+
		"Ratios are per SYN packet (a retransmitted SYN counts again). Intervals: Wilson score on the sampled counts (README, \"Connection health from OVS\").", obj{
		"syn":               num("SYNs sent (estimate)"),
		"synack_in":         num("SYN-ACKs received on the reverse pair (estimate)"),
		"rst_in":            num("RSTs received on the reverse pair (estimate)"),
		"sampled_syn":       num("sampled SYNs behind the estimate"),
		"sampled_synack_in": num("sampled SYN-ACKs behind the estimate"),
		"sampled_rst_in":    num("sampled RSTs behind the estimate"),
		"failure_ratio":     num("1 − synack_in/syn, clamped to [0, 1]: SYNs left unanswered or refused"),
		"failure_ci95":      interval("95% interval of failure_ratio"),
		"refused_ratio":     num("rst_in/syn, clamped to [0, 1]"),
		"refused_ci95":      interval("95% interval of refused_ratio"),
	}, "syn", "synack_in", "rst_in", "sampled_syn", "sampled_synack_in", "sampled_rst_in", "failure_ratio", "failure_ci95", "refused_ratio", "refused_ci95")
}
