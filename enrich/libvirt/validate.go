package libvirt

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Reply validation: go-libvirt's XDR decoder allocates whatever an array
// count or string length in a reply claims (up to 2^31 elements; its
// generated calls pass no size limit), so one hostile or corrupt frame of a
// few bytes could make it allocate gigabytes. wireConn therefore walks the
// body of every frame before go-libvirt sees it, following the reply and
// message layouts of remote_protocol.x for the procedures vmflow calls,
// and checks every count and length against the bytes that remain (each
// element needs at least its minimum encoded size). A frame that fails, or
// a reply or message of a procedure vmflow never calls, ends the connection
// with ErrBadPacket (counted as an RPC error; the source reconnects).

// Procedure numbers (remote_protocol.x enum remote_procedure).
const (
	procConnectClose         = 2
	procDomainCreate         = 9
	procDomainDefineXML      = 11
	procDomainDestroy        = 12
	procDomainGetXMLDesc     = 14
	procDomainGetInfo        = 16
	procDomainLookupByName   = 23
	procDomainUndefine       = 35
	procConnectGetHostname   = 59
	procConnectSupportsFeat  = 60
	procDomainBlockStats     = 64
	procDomainInterfaceStats = 65
	procAuthList             = 66
	procAuthPolkit           = 70
	procDomainMemoryStats    = 159
	procDomainGetState       = 212
	procDomainGetCPUStats    = 262
	procConnectListAll       = 273
	procEventRegisterAny     = 316
	procEventDeregisterAny   = 317
	procEventLifecycle       = 318
	procEventDeviceRemoved   = 333
	procConnectGetAllStats   = 344
	procDomainIfaceAddresses = 353
	procEventDeviceAdded     = 354
	msgTypeReply             = 1
	msgStatusError           = 1
)

var (
	errXDR         = errors.New("xdr")
	errUnknownProc = errors.New("procedure never called by vmflow")
)

// xdrCheck walks an XDR body, bounding every length by what remains.
type xdrCheck struct {
	b   []byte
	err error
}

func (x *xdrCheck) fail(what string) {
	if x.err == nil {
		x.err = fmt.Errorf("%w: %s with %d bytes left", errXDR, what, len(x.b))
	}
	x.b = nil
}

func (x *xdrCheck) skip(n int) {
	if x.err != nil {
		return
	}
	if n < 0 || n > len(x.b) {
		x.fail(fmt.Sprintf("%d bytes needed", n))
		return
	}
	x.b = x.b[n:]
}

func (x *xdrCheck) u32() uint32 {
	if x.err != nil || len(x.b) < 4 {
		x.fail("word")
		return 0
	}
	v := binary.BigEndian.Uint32(x.b)
	x.b = x.b[4:]
	return v
}

func (x *xdrCheck) str() {
	n := x.u32()
	x.skip(int((uint64(n) + 3) &^ 3))
}

func (x *xdrCheck) optStr() {
	if x.u32() != 0 {
		x.str()
	}
}

// array checks count * minSize against the rest, then walks each element.
func (x *xdrCheck) array(minSize int, elem func()) {
	n := x.u32()
	if x.err != nil {
		return
	}
	if uint64(n)*uint64(minSize) > uint64(len(x.b)) {
		x.fail(fmt.Sprintf("array of %d elements", n))
		return
	}
	for i := uint32(0); i < n && x.err == nil; i++ {
		elem()
	}
}

func (x *xdrCheck) domain() { x.str(); x.skip(16 + 4) } // remote_nonnull_domain

// typedParam is remote_typed_param { string field; union value }.
func (x *xdrCheck) typedParam() {
	x.str()
	switch t := x.u32(); t {
	case 1, 2, 6: // int, uint, boolean
		x.skip(4)
	case 3, 4, 5: // llong, ullong, double
		x.skip(8)
	case 7: // string
		x.str()
	default:
		if x.err == nil {
			x.fail(fmt.Sprintf("typed parameter type %d", t))
		}
	}
}

// checkBody validates one frame's body (after the 28-byte header); an
// error says why go-libvirt must not see it.
func checkBody(proc, typ, status uint32, body []byte) error {
	x := &xdrCheck{b: body}
	if typ == msgTypeReply && status == msgStatusError {
		// remote_error { int code; int domain; remote_string message; int level;
		//   remote_domain dom; remote_string str1, str2, str3; int int1, int2;
		//   remote_network net; }
		x.skip(8)
		x.optStr()
		x.skip(4)
		if x.u32() != 0 {
			x.domain()
		}
		x.optStr()
		x.optStr()
		x.optStr()
		x.skip(8)
		if x.u32() != 0 {
			x.str()
			x.skip(16)
		}
		return x.err
	}
	switch proc {
	case procConnectOpen, procConnectClose, procDomainCreate, procDomainDestroy, procDomainUndefine,
		procEventDeregisterAny, procDomainGetInfo, procDomainBlockStats, procDomainInterfaceStats,
		procDomainGetState, procConnectSupportsFeat, procAuthPolkit, procEventRegisterAny:
		// void or fixed-size replies: go-libvirt reads them without allocating by count
	case procDomainDefineXML, procDomainLookupByName:
		x.domain()
	case procDomainGetXMLDesc, procConnectGetHostname:
		x.str()
	case procAuthList:
		x.array(4, func() { x.skip(4) })
	case procDomainMemoryStats:
		x.array(12, func() { x.skip(12) })
	case procDomainGetCPUStats:
		x.array(12, x.typedParam)
	case procConnectListAll:
		x.array(24, x.domain)
	case procConnectGetAllStats:
		x.array(28, func() {
			x.domain()
			x.array(12, x.typedParam)
		})
	case procDomainIfaceAddresses:
		x.array(12, func() {
			x.str()
			x.optStr()
			x.array(12, func() { x.skip(4); x.str(); x.skip(4) })
		})
	case procEventLifecycle:
		x.skip(4)
		x.domain()
		x.skip(8)
	case procEventDeviceRemoved, procEventDeviceAdded:
		x.skip(4)
		x.domain()
		x.str()
	default:
		return errUnknownProc
	}
	return x.err
}
