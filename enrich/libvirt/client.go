package libvirt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"
)

// TLSConfig holds the files for qemu+tls:// connections.
type TLSConfig struct {
	CAFile             string `mapstructure:"ca_file" yaml:"ca_file" cfgload:"path"`
	CertFile           string `mapstructure:"cert_file" yaml:"cert_file" cfgload:"path"`
	KeyFile            string `mapstructure:"key_file" yaml:"key_file" cfgload:"path"`
	ServerName         string `mapstructure:"server_name" yaml:"server_name"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify" yaml:"insecure_skip_verify"`
}

// DialOptions tune a Client.
type DialOptions struct {
	TLS               TLSConfig
	ReadOnly          bool          // open with VIR_CONNECT_RO
	KeepaliveInterval time.Duration // send a ping after this much silence; 0 = only answer pings
	KeepaliveCount    int           // declare the peer dead after KeepaliveCount silent intervals
	CallTimeout       time.Duration // per call; 0 = only the context bounds a call
	EventBuffer       int           // size of the Events channel
	// Observe, when set, is called after every call with its procedure,
	// duration and error (for metrics).
	Observe func(proc int32, d time.Duration, err error)
	// OnEventDrop, when set, is called when an event is dropped because the
	// Events channel is full.
	OnEventDrop func()
}

// Client is a connection to one libvirt daemon speaking its remote RPC
// protocol. All methods are safe for concurrent use; calls are pipelined.
type Client struct {
	c      *conn
	target Target
}

// Dial connects to the daemon named by uri, checks the authentication
// methods it offers (none and polkit are supported, SASL is not), opens the
// driver connection and enables keepalive.
func Dial(ctx context.Context, uri string, opts DialOptions) (*Client, error) {
	t, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	nc, err := dialTransport(ctx, t, opts.TLS)
	if err != nil {
		return nil, err
	}
	cl := &Client{target: t, c: newConn(nc, rpcOptions{
		KeepaliveInterval: opts.KeepaliveInterval,
		KeepaliveCount:    opts.KeepaliveCount,
		CallTimeout:       opts.CallTimeout,
		EventBuffer:       opts.EventBuffer,
		Observe:           opts.Observe,
		OnEventDrop:       opts.OnEventDrop,
	})}
	if err := cl.handshake(ctx, opts.ReadOnly); err != nil {
		cl.c.shutdown(ErrClosed)
		return nil, err
	}
	return cl, nil
}

func dialTransport(ctx context.Context, t Target, tc TLSConfig) (net.Conn, error) {
	var d net.Dialer
	var errs []error
	for _, addr := range t.Addrs {
		nc, err := d.DialContext(ctx, t.Network, addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !t.TLS {
			return nc, nil
		}
		cfg, err := buildTLS(tc, t.Host, t.NoVerify)
		if err != nil {
			nc.Close()
			return nil, err
		}
		tlsConn := tls.Client(nc, cfg)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("libvirt tls handshake with %s: %w", addr, err)
		}
		// After the handshake the daemon sends one byte: 1 when it accepted
		// our certificate and address, anything else when it did not
		// (virNetServerClient / virNetClientSetTLSSession).
		if dl, ok := ctx.Deadline(); ok {
			_ = tlsConn.SetReadDeadline(dl)
		}
		var ok [1]byte
		if _, err := io.ReadFull(tlsConn, ok[:]); err != nil {
			nc.Close()
			return nil, fmt.Errorf("libvirt tls check byte from %s: %w", addr, err)
		}
		_ = tlsConn.SetReadDeadline(time.Time{})
		if ok[0] != 1 {
			nc.Close()
			return nil, fmt.Errorf("libvirt tls: %s refused our certificate or address", addr)
		}
		return tlsConn, nil
	}
	return nil, fmt.Errorf("dial libvirt: %w", errors.Join(errs...))
}

func buildTLS(tc TLSConfig, host string, noVerify bool) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if tc.ServerName != "" {
		cfg.ServerName = tc.ServerName
	}
	cfg.InsecureSkipVerify = tc.InsecureSkipVerify || noVerify
	if tc.CAFile != "" {
		pem, err := os.ReadFile(tc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("libvirt tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("libvirt tls ca %s: no certificates", tc.CAFile)
		}
		cfg.RootCAs = pool
	}
	if tc.CertFile != "" || tc.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(tc.CertFile, tc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("libvirt tls client cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (cl *Client) handshake(ctx context.Context, ro bool) error {
	// AUTH_LIST: void args, remote_auth_list_ret { remote_auth_type types<> }.
	body, err := cl.c.call(ctx, ProcAuthList, nil)
	if err != nil {
		return fmt.Errorf("libvirt auth list: %w", err)
	}
	r := &xdrReader{b: body}
	n := r.count(authTypeListMax, 4)
	types := make([]int32, n)
	for i := range types {
		types[i] = r.i32()
	}
	if r.err != nil {
		return fmt.Errorf("libvirt auth list: %w", r.err)
	}
	auth := int32(-1)
	for _, a := range types {
		if a == AuthNone || a == AuthPolkit {
			auth = a
			break
		}
	}
	switch {
	case len(types) == 0 || auth == AuthNone:
	case auth == AuthPolkit:
		// remote_auth_polkit_ret { int complete; }
		if _, err := cl.c.call(ctx, ProcAuthPolkit, nil); err != nil {
			return fmt.Errorf("libvirt polkit auth: %w", err)
		}
	default:
		return fmt.Errorf("libvirt auth: daemon requires %v; only none and polkit are supported (SASL is not)", types)
	}

	// CONNECT_OPEN: remote_connect_open_args { remote_string name; unsigned flags; }
	var w xdrWriter
	name := cl.target.Name
	w.optStr(&name)
	var flags uint32
	if ro {
		flags |= connectRO
	}
	w.u32(flags)
	if _, err := cl.c.call(ctx, ProcConnectOpen, w.b); err != nil {
		return fmt.Errorf("libvirt connect open %q: %w", name, err)
	}
	// Ask for keepalive: the daemon starts pinging a client (and expects
	// its pings answered) only once the client asks for this feature.
	// An old daemon without it ignores our pings; EOF still detects its death.
	_, _ = cl.supportsFeature(ctx, featureProgramKeepalive)
	return nil
}

func (cl *Client) supportsFeature(ctx context.Context, feature int32) (bool, error) {
	var w xdrWriter
	w.i32(feature)
	body, err := cl.c.call(ctx, ProcConnectSupportsFeature, w.b)
	if err != nil {
		return false, err
	}
	r := &xdrReader{b: body}
	v := r.i32()
	return v != 0, r.err
}

// OpenName is the name sent in CONNECT_OPEN.
func (cl *Client) OpenName() string { return cl.target.Name }

// Events delivers domain events after RegisterDomainEvent. It is never
// closed; use Done to learn that the connection ended.
func (cl *Client) Events() <-chan Event { return cl.c.events }

// Done is closed when the connection ends (error, keepalive timeout, Close).
func (cl *Client) Done() <-chan struct{} { return cl.c.done }

// Err is why the connection ended (nil while it is up).
func (cl *Client) Err() error {
	select {
	case <-cl.c.done:
		return cl.c.closeErr()
	default:
		return nil
	}
}

// DroppedEvents counts events dropped because the channel was full.
func (cl *Client) DroppedEvents() uint64 { return cl.c.dropped.Load() }

// Close sends CONNECT_CLOSE (best effort, 2 s) and closes the socket.
func (cl *Client) Close() error {
	select {
	case <-cl.c.done:
		return nil
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := cl.c.call(ctx, ProcConnectClose, nil)
	cl.c.shutdown(fmt.Errorf("%w: closed by client", ErrClosed))
	return err
}

// Hostname is CONNECT_GET_HOSTNAME.
func (cl *Client) Hostname(ctx context.Context) (string, error) {
	body, err := cl.c.call(ctx, ProcConnectGetHostname, nil)
	if err != nil {
		return "", fmt.Errorf("libvirt hostname: %w", err)
	}
	r := &xdrReader{b: body}
	h := r.str()
	return h, r.err
}

// ListAllDomains is CONNECT_LIST_ALL_DOMAINS (flags 0 = active and inactive).
func (cl *Client) ListAllDomains(ctx context.Context, flags uint32) ([]Domain, error) {
	var w xdrWriter
	w.i32(1) // need_results
	w.u32(flags)
	body, err := cl.c.call(ctx, ProcConnectListAllDomains, w.b)
	if err != nil {
		return nil, fmt.Errorf("libvirt list domains: %w", err)
	}
	// remote_connect_list_all_domains_ret { remote_nonnull_domain domains<>; unsigned ret; }
	r := &xdrReader{b: body}
	n := r.count(domainListMax, 24)
	doms := make([]Domain, n)
	for i := range doms {
		doms[i] = r.domain()
	}
	r.u32()
	if r.err != nil {
		return nil, fmt.Errorf("libvirt list domains: %w", r.err)
	}
	return doms, nil
}

// DomainXML is DOMAIN_GET_XML_DESC.
func (cl *Client) DomainXML(ctx context.Context, d Domain, flags uint32) (string, error) {
	var w xdrWriter
	w.domain(d)
	w.u32(flags)
	body, err := cl.c.call(ctx, ProcDomainGetXMLDesc, w.b)
	if err != nil {
		return "", fmt.Errorf("libvirt xml of %s: %w", d.Name, err)
	}
	r := &xdrReader{b: body}
	s := r.str()
	return s, r.err
}

// DomainState is DOMAIN_GET_STATE: virDomainState and its reason.
func (cl *Client) DomainState(ctx context.Context, d Domain) (state, reason int32, err error) {
	var w xdrWriter
	w.domain(d)
	w.u32(0)
	body, err := cl.c.call(ctx, ProcDomainGetState, w.b)
	if err != nil {
		return 0, 0, fmt.Errorf("libvirt state of %s: %w", d.Name, err)
	}
	r := &xdrReader{b: body}
	state, reason = r.i32(), r.i32()
	return state, reason, r.err
}

// DomainInfo is DOMAIN_GET_INFO.
type DomainInfo struct {
	State     int32
	MaxMemKiB uint64
	MemoryKiB uint64
	VCPUs     uint16
	CPUTimeNs uint64
}

// DomainInfo is DOMAIN_GET_INFO.
func (cl *Client) DomainInfo(ctx context.Context, d Domain) (DomainInfo, error) {
	var w xdrWriter
	w.domain(d)
	body, err := cl.c.call(ctx, ProcDomainGetInfo, w.b)
	if err != nil {
		return DomainInfo{}, fmt.Errorf("libvirt info of %s: %w", d.Name, err)
	}
	// unsigned char and unsigned short each take 4 bytes in XDR.
	r := &xdrReader{b: body}
	var in DomainInfo
	in.State = int32(r.u32() & 0xff)
	in.MaxMemKiB = r.u64()
	in.MemoryKiB = r.u64()
	in.VCPUs = uint16(r.u32())
	in.CPUTimeNs = r.u64()
	return in, r.err
}

// InterfaceAddresses is DOMAIN_INTERFACE_ADDRESSES with one source
// (AddrSrcLease, AddrSrcAgent or AddrSrcARP).
func (cl *Client) InterfaceAddresses(ctx context.Context, d Domain, source uint32) ([]InterfaceAddrs, error) {
	var w xdrWriter
	w.domain(d)
	w.u32(source)
	w.u32(0)
	body, err := cl.c.call(ctx, ProcDomainInterfaceAddresses, w.b)
	if err != nil {
		return nil, fmt.Errorf("libvirt interface addresses of %s: %w", d.Name, err)
	}
	return decodeInterfaceAddrs(body)
}

func decodeInterfaceAddrs(body []byte) ([]InterfaceAddrs, error) {
	// remote_domain_interface_addresses_ret { remote_domain_interface ifaces<>; }
	// remote_domain_interface { string name; remote_string hwaddr; remote_domain_ip_addr addrs<>; }
	// remote_domain_ip_addr { int type; string addr; unsigned prefix; }
	r := &xdrReader{b: body}
	n := r.count(domainIfaceMax, 12)
	out := make([]InterfaceAddrs, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		var ia InterfaceAddrs
		ia.Name = r.str()
		if hw := r.optStr(); hw != nil {
			ia.HWAddr = *hw
		}
		na := r.count(domainIPAddrMax, 12)
		for j := 0; j < na && r.err == nil; j++ {
			typ := r.i32()
			s := r.str()
			prefix := r.u32()
			if r.err != nil {
				break
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				continue // skip an address we cannot read; keep the rest
			}
			_ = typ // 0 = IPv4, 1 = IPv6; the parsed address already says which
			ia.Addrs = append(ia.Addrs, IPAddr{Addr: a, Prefix: prefix})
		}
		out = append(out, ia)
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode interface addresses: %w", r.err)
	}
	return out, nil
}

// RegisterDomainEvent is CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY for all
// domains; the daemon then sends the event's messages, delivered on Events.
func (cl *Client) RegisterDomainEvent(ctx context.Context, eventID int32) (int32, error) {
	var w xdrWriter
	w.i32(eventID)
	w.u32(0) // remote_domain dom: NULL = every domain
	body, err := cl.c.call(ctx, ProcConnectDomainEventCallbackRegisterAny, w.b)
	if err != nil {
		return 0, fmt.Errorf("libvirt register event %d: %w", eventID, err)
	}
	r := &xdrReader{b: body}
	id := r.i32()
	return id, r.err
}

// DeregisterDomainEvent is CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY.
func (cl *Client) DeregisterDomainEvent(ctx context.Context, callbackID int32) error {
	var w xdrWriter
	w.i32(callbackID)
	_, err := cl.c.call(ctx, ProcConnectDomainEventCallbackDeregisterAny, w.b)
	return err
}

func (cl *Client) domainCall(ctx context.Context, proc int32, what string, args []byte) (Domain, error) {
	body, err := cl.c.call(ctx, proc, args)
	if err != nil {
		return Domain{}, fmt.Errorf("libvirt %s: %w", what, err)
	}
	r := &xdrReader{b: body}
	d := r.domain()
	return d, r.err
}

// DefineXML is DOMAIN_DEFINE_XML.
func (cl *Client) DefineXML(ctx context.Context, xml string) (Domain, error) {
	var w xdrWriter
	w.str(xml)
	return cl.domainCall(ctx, ProcDomainDefineXML, "define domain", w.b)
}

// LookupByName is DOMAIN_LOOKUP_BY_NAME.
func (cl *Client) LookupByName(ctx context.Context, name string) (Domain, error) {
	var w xdrWriter
	w.str(name)
	return cl.domainCall(ctx, ProcDomainLookupByName, "lookup "+name, w.b)
}

func (cl *Client) domainVoid(ctx context.Context, proc int32, what string, d Domain) error {
	var w xdrWriter
	w.domain(d)
	if _, err := cl.c.call(ctx, proc, w.b); err != nil {
		return fmt.Errorf("libvirt %s %s: %w", what, d.Name, err)
	}
	return nil
}

// Create is DOMAIN_CREATE (start a defined domain).
func (cl *Client) Create(ctx context.Context, d Domain) error {
	return cl.domainVoid(ctx, ProcDomainCreate, "start", d)
}

// Destroy is DOMAIN_DESTROY (hard stop).
func (cl *Client) Destroy(ctx context.Context, d Domain) error {
	return cl.domainVoid(ctx, ProcDomainDestroy, "destroy", d)
}

// Undefine is DOMAIN_UNDEFINE.
func (cl *Client) Undefine(ctx context.Context, d Domain) error {
	return cl.domainVoid(ctx, ProcDomainUndefine, "undefine", d)
}
