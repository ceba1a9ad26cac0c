// Package delayline is a user-space delay line for the OVS lab (the
// lab's kernel has no sch_netem): a network namespace with two veths, and
// a forwarder that reads every frame arriving on one (AF_PACKET) and sends
// it out of the other a set time later, in both directions. Insert puts it
// on the trunk between two lab hypervisors.
package delayline

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// Line is a running delay line.
type Line struct {
	Netns string
	delay atomic.Int64 // ns
	stop  atomic.Bool
	wg    sync.WaitGroup
	fds   [2]int
	mu    sync.Mutex
	holds []time.Duration
	// Forwarded counts frames sent on; Dropped frames the queue had no room for.
	Forwarded, Dropped atomic.Uint64
}

func run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v: %s", name, args, err, out)
	}
	return nil
}

// Insert replaces the lab's trunk between hosts a and b (a veth pair
// trunk-<b> / trunk-<a> on their bridges) with a ↔ delay line ↔ b, each
// frame delayed by delay one way. The line is removed by t.Cleanup.
func Insert(t testing.TB, lab *ovslab.Lab, a, b *ovslab.Host, delay time.Duration) *Line {
	t.Helper()
	da, db := "trunk-"+b.Name, "trunk-"+a.Name
	l := &Line{Netns: "vmflab" + lab.ID + "-dl"}
	l.delay.Store(int64(delay))
	fail := func(err error) *Line {
		t.Fatalf("delayline: %v", err)
		return nil
	}
	for _, s := range []struct {
		h    *ovslab.Host
		port string
	}{{a, da}, {b, db}} {
		if _, err := lab.Vsctl(s.h, "del-port", s.h.Bridge, s.port); err != nil {
			return fail(err)
		}
	}
	steps := [][]string{
		{"ip", "-n", a.Netns, "link", "del", da},
		{"ip", "netns", "add", l.Netns},
		{"ip", "-n", l.Netns, "link", "set", "lo", "up"},
		{"ip", "-n", a.Netns, "link", "add", da, "type", "veth", "peer", "name", "dla", "netns", l.Netns},
		{"ip", "-n", b.Netns, "link", "add", db, "type", "veth", "peer", "name", "dlb", "netns", l.Netns},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return fail(err)
		}
	}
	t.Cleanup(func() {
		l.stop.Store(true)
		l.wg.Wait()
		for _, fd := range l.fds {
			if fd > 0 {
				unix.Close(fd)
			}
		}
		_ = run("ip", "netns", "del", l.Netns)
	})
	for _, d := range []struct{ ns, dev string }{{a.Netns, da}, {b.Netns, db}, {l.Netns, "dla"}, {l.Netns, "dlb"}} {
		if err := run("ip", "netns", "exec", d.ns, "ethtool", "-K", d.dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"); err != nil {
			return fail(err)
		}
		if err := run("ip", "-n", d.ns, "link", "set", d.dev, "up"); err != nil {
			return fail(err)
		}
	}
	if err := l.start(); err != nil {
		return fail(err)
	}
	if _, err := lab.Vsctl(a, "add-port", a.Bridge, da); err != nil {
		return fail(err)
	}
	if _, err := lab.Vsctl(b, "add-port", b.Bridge, db); err != nil {
		return fail(err)
	}
	return l
}

// SetDelay changes the one-way delay of frames arriving from now on.
func (l *Line) SetDelay(d time.Duration) { l.delay.Store(int64(d)) }

// Delay is the current one-way delay.
func (l *Line) Delay() time.Duration { return time.Duration(l.delay.Load()) }

// InNetns runs fn on a thread switched into the named namespace. The
// thread is never given back to the runtime (it exits with the goroutine).
func InNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with us
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func ifIndexIoctl(dev string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("ifindex of %s: %w", dev, err)
	}
	return int(ifr.Uint32()), nil
}

func (l *Line) start() error {
	var fa, fb int
	err := InNetns(l.Netns, func() error {
		var err error
		if fa, err = ifIndexAndSocket("dla"); err != nil {
			return err
		}
		fb, err = ifIndexAndSocket("dlb")
		return err
	})
	if err != nil {
		return err
	}
	l.fds = [2]int{fa, fb}
	l.forward(fa, fb)
	l.forward(fb, fa)
	return nil
}

func ifIndexAndSocket(dev string) (int, error) {
	idx, err := ifIndexIoctl(dev)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: idx}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 8<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	tv := unix.Timeval{Usec: 100_000}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return fd, nil
}

// kernelTime is the SCM_TIMESTAMPNS of a received frame (0 if absent).
func kernelTime(oob []byte) int64 {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return ts.Nano()
		}
	}
	return 0
}

type frame struct {
	recv, due int64
	b         []byte
}

func (l *Line) hold(ns int64) {
	l.mu.Lock()
	l.holds = append(l.holds, time.Duration(ns))
	l.mu.Unlock()
}

// TakeHolds returns the time each frame forwarded since the last call
// was actually held (kernel arrival to write), and forgets them: the delay the line
// really added, its own overshoot included.
func (l *Line) TakeHolds() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.holds
	l.holds = nil
	return h
}

// forward reads frames arriving on in and sends each on out after the
// delay, in order.
func (l *Line) forward(in, out int) {
	q := make(chan frame, 65536)
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		defer close(q)
		buf := make([]byte, 65536)
		oob := make([]byte, 128)
		for !l.stop.Load() {
			n, oobn, _, from, err := unix.Recvmsg(in, buf, oob, 0)
			if err != nil {
				continue // timeout (stop check) or EINTR
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue // our own sends on the other direction
			}
			// The frame's kernel arrival time: the delay counts from it,
			// so the forwarder's own wake-up latency is not added.
			now := kernelTime(oob[:oobn])
			if now == 0 {
				now = time.Now().UnixNano()
			}
			f := frame{recv: now, due: now + l.delay.Load(), b: append([]byte(nil), buf[:n]...)}
			select {
			case q <- f:
			default:
				l.Dropped.Add(1)
			}
		}
	}()
	go func() {
		defer l.wg.Done()
		for f := range q {
			// Go's timers may wake up to a millisecond late: sleep to
			// within 1.1 ms of the due time, then yield until it.
			for {
				d := f.due - time.Now().UnixNano()
				if d <= 0 {
					break
				}
				if d > 1.2e6 {
					time.Sleep(time.Duration(d - 1.1e6))
				} else {
					runtime.Gosched()
				}
			}
			if _, err := unix.Write(out, f.b); err == nil {
				l.Forwarded.Add(1)
				l.hold(time.Now().UnixNano() - f.recv)
			}
		}
	}()
}
