package influx

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Spool file format
//
// The spool is a directory of segment files named <seq>.seg (seq is a
// zero-padded, increasing number). A segment is a sequence of records:
//
//	offset 0  magic   [2]byte "VF"
//	       2  state   byte    0 = pending, 1 = acknowledged (written to InfluxDB)
//	       3  version byte    2 (1: timestamps in seconds, before vmflow
//	                              stamped windows to the nanosecond; such
//	                              records are converted when replayed)
//	       4  length  uint32  payload length (little endian)
//	       8  points  uint32  number of points in the payload
//	      12  crc     uint32  CRC-32C of length, points and payload
//	      16  payload         line protocol
//
// Appends are fsync'd. Acknowledging a record rewrites its state byte in
// place (fdatasync'd); a segment whose records are all acknowledged is
// deleted. On open, every segment is scanned: a record whose header or CRC
// is wrong (a torn write after a crash) ends the segment, which is truncated
// there, and is counted as corrupt.

const (
	recHeaderLen = 16
	recPending   = 0
	recAcked     = 1
	recVersion   = 2 // payload timestamps in nanoseconds
	recVersionS  = 1 // payload timestamps in seconds (older spools)
	segSuffix    = ".seg"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrRecordTooLarge is returned by append for a batch larger than the spool.
var ErrRecordTooLarge = errors.New("batch larger than the spool's max_bytes")

type segment struct {
	seq    uint64
	path   string
	f      *os.File
	size   int64
	head   int64 // offset of the first record that may be pending
	points int64 // pending points
	recs   int64 // pending records
}

// spoolRecord is one pending batch read from the spool.
type spoolRecord struct {
	seq     uint64
	off     int64
	data    []byte
	points  int
	version byte
}

// spoolStats are cumulative counts since the spool was opened.
type spoolStats struct {
	Bytes          int64 // bytes on disk
	PendingPoints  int64
	PendingRecords int64
	DroppedPoints  int64 // deleted, unsent, because the spool was full
	DroppedRecords int64
	CorruptRecords int64 // torn/corrupt records found on open (skipped)
	CorruptBytes   int64
}

type spool struct {
	mu       sync.Mutex
	dir      string
	maxBytes int64
	segBytes int64
	segs     []*segment // oldest first; the last one is appended to
	closed   bool
	st       spoolStats
}

// openSpool opens (creating) the spool directory and scans the existing
// segments.
func openSpool(dir string, maxBytes, segBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes, segBytes: segBytes}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, seq := range seqs {
		seg, err := s.scan(seq)
		if err != nil {
			s.closeFiles()
			return nil, err
		}
		if seg.recs == 0 && seg.size > 0 {
			// fully acknowledged: nothing left to send
			seg.f.Close()
			_ = os.Remove(seg.path)
			continue
		}
		s.segs = append(s.segs, seg)
		s.st.Bytes += seg.size
		s.st.PendingPoints += seg.points
		s.st.PendingRecords += seg.recs
	}
	return s, nil
}

func (s *spool) segPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, segSuffix))
}

// scan reads a segment, verifying every record; a bad record truncates the
// segment at its offset.
func (s *spool) scan(seq uint64) (*segment, error) {
	path := s.segPath(seq)
	f, err := os.OpenFile(path, os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool: open segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	seg := &segment{seq: seq, path: path, f: f, head: -1}
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, st.Size()), 1<<20)
	var hdr [recHeaderLen]byte
	var payload []byte
	off := int64(0)
	for off < st.Size() {
		bad := false
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			bad = true
		} else if hdr[0] != 'V' || hdr[1] != 'F' || (hdr[3] != recVersion && hdr[3] != recVersionS) || hdr[2] > recAcked {
			bad = true
		} else {
			n := int64(binary.LittleEndian.Uint32(hdr[4:]))
			if off+recHeaderLen+n > st.Size() {
				bad = true
			} else {
				if int64(cap(payload)) < n {
					payload = make([]byte, n)
				}
				payload = payload[:n]
				if _, err := io.ReadFull(r, payload); err != nil {
					bad = true
				} else {
					c := crc32.Update(0, crcTable, hdr[4:12])
					c = crc32.Update(c, crcTable, payload)
					if c != binary.LittleEndian.Uint32(hdr[12:]) {
						bad = true
					}
				}
			}
			if !bad {
				if hdr[2] == recPending {
					if seg.head < 0 {
						seg.head = off
					}
					seg.points += int64(binary.LittleEndian.Uint32(hdr[8:]))
					seg.recs++
				}
				off += recHeaderLen + n
				continue
			}
		}
		if bad {
			s.st.CorruptRecords++
			s.st.CorruptBytes += st.Size() - off
			if err := f.Truncate(off); err != nil {
				f.Close()
				return nil, fmt.Errorf("spool: truncate torn segment: %w", err)
			}
			_ = f.Sync()
			break
		}
	}
	seg.size = off
	if seg.head < 0 {
		seg.head = off
	}
	return seg, nil
}

func (s *spool) closeFiles() {
	for _, seg := range s.segs {
		seg.f.Close()
	}
}

// Close closes the segment files (the data stays on disk).
func (s *spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.closeFiles()
	return nil
}

// Stats returns the current counts.
func (s *spool) Stats() spoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Pending reports whether the spool holds unsent records.
func (s *spool) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.PendingRecords > 0
}

func (s *spool) removeSegLocked(i int) {
	seg := s.segs[i]
	seg.f.Close()
	_ = os.Remove(seg.path)
	s.st.Bytes -= seg.size
	s.st.PendingPoints -= seg.points
	s.st.PendingRecords -= seg.recs
	s.segs = append(s.segs[:i], s.segs[i+1:]...)
}

// Append adds one batch; it returns the points dropped (oldest segments
// deleted) to make room.
func (s *spool) Append(data []byte, points int) (droppedPoints int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errors.New("spool closed")
	}
	recLen := int64(recHeaderLen + len(data))
	if recLen > s.maxBytes || recLen > 1<<32-1 {
		return 0, ErrRecordTooLarge
	}
	// rotate
	var cur *segment
	if n := len(s.segs); n > 0 {
		cur = s.segs[n-1]
	}
	if cur == nil || (cur.size > 0 && cur.size+recLen > s.segBytes) {
		seq := uint64(1)
		if cur != nil {
			seq = cur.seq + 1
		}
		path := s.segPath(seq)
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return 0, fmt.Errorf("spool: create segment: %w", err)
		}
		cur = &segment{seq: seq, path: path, f: f}
		s.segs = append(s.segs, cur)
		if d, err := os.Open(s.dir); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	// make room: drop the oldest segments (never the one appended to)
	for s.st.Bytes+recLen > s.maxBytes && len(s.segs) > 1 {
		old := s.segs[0]
		droppedPoints += old.points
		s.st.DroppedPoints += old.points
		s.st.DroppedRecords += old.recs
		s.removeSegLocked(0)
	}
	buf := make([]byte, recHeaderLen, recLen)
	buf[0], buf[1], buf[2], buf[3] = 'V', 'F', recPending, recVersion
	binary.LittleEndian.PutUint32(buf[4:], uint32(len(data)))
	binary.LittleEndian.PutUint32(buf[8:], uint32(points))
	c := crc32.Update(0, crcTable, buf[4:12])
	c = crc32.Update(c, crcTable, data)
	binary.LittleEndian.PutUint32(buf[12:], c)
	buf = append(buf, data...)
	if _, err := cur.f.WriteAt(buf, cur.size); err != nil {
		_ = cur.f.Truncate(cur.size)
		return droppedPoints, fmt.Errorf("spool: write: %w", err)
	}
	if err := cur.f.Sync(); err != nil {
		return droppedPoints, fmt.Errorf("spool: fsync: %w", err)
	}
	if cur.recs == 0 {
		cur.head = cur.size
	}
	cur.size += recLen
	cur.points += int64(points)
	cur.recs++
	s.st.Bytes += recLen
	s.st.PendingPoints += int64(points)
	s.st.PendingRecords++
	return droppedPoints, nil
}

// Peek returns the oldest pending record, or ok == false when none.
func (s *spool) Peek() (rec spoolRecord, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return rec, false, errors.New("spool closed")
	}
	for len(s.segs) > 0 {
		seg := s.segs[0]
		var hdr [recHeaderLen]byte
		for seg.recs > 0 && seg.head+recHeaderLen <= seg.size {
			if _, err := seg.f.ReadAt(hdr[:], seg.head); err != nil {
				return rec, false, fmt.Errorf("spool: read: %w", err)
			}
			n := int64(binary.LittleEndian.Uint32(hdr[4:]))
			if hdr[2] == recAcked {
				seg.head += recHeaderLen + n
				continue
			}
			data := make([]byte, n)
			if _, err := seg.f.ReadAt(data, seg.head+recHeaderLen); err != nil {
				return rec, false, fmt.Errorf("spool: read: %w", err)
			}
			if hdr[3] == recVersionS {
				data = secondsToNanos(data)
			}
			return spoolRecord{seq: seg.seq, off: seg.head, data: data, points: int(binary.LittleEndian.Uint32(hdr[8:])), version: hdr[3]}, true, nil
		}
		if len(s.segs) == 1 {
			// the segment appended to: keep it, but start it afresh
			if seg.size > 0 {
				s.st.Bytes -= seg.size
				seg.size, seg.head = 0, 0
				_ = seg.f.Truncate(0)
			}
			return rec, false, nil
		}
		s.removeSegLocked(0)
	}
	return rec, false, nil
}

// Ack marks rec as written. A record whose segment was dropped meanwhile
// is ignored.
func (s *spool) Ack(rec spoolRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("spool closed")
	}
	for i, seg := range s.segs {
		if seg.seq != rec.seq {
			continue
		}
		if rec.off < seg.head || rec.off >= seg.size {
			return nil // already acknowledged or truncated
		}
		if _, err := seg.f.WriteAt([]byte{recAcked}, rec.off+2); err != nil {
			return fmt.Errorf("spool: ack: %w", err)
		}
		if err := seg.f.Sync(); err != nil {
			return fmt.Errorf("spool: ack fsync: %w", err)
		}
		seg.points -= int64(rec.points)
		seg.recs--
		s.st.PendingPoints -= int64(rec.points)
		s.st.PendingRecords--
		if rec.off == seg.head {
			seg.head = rec.off + recHeaderLen + int64(len(rec.data))
		}
		if seg.recs == 0 && i < len(s.segs)-1 {
			s.removeSegLocked(i)
		}
		return nil
	}
	return nil
}

// secondsToNanos rewrites the line protocol of a version-1 record, whose
// timestamps are in seconds, to nanoseconds: the timestamp is the last
// space-separated token of a line (string field values end with a quote).
func secondsToNanos(data []byte) []byte {
	out := make([]byte, 0, len(data)+len(data)/32)
	for len(data) > 0 {
		line := data
		rest := []byte(nil)
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, rest = data[:i], data[i+1:]
		}
		out = append(out, line...)
		if sp := bytes.LastIndexByte(line, ' '); sp >= 0 && sp < len(line)-1 && len(line)-sp-1 <= 12 && allDigits(line[sp+1:]) {
			out = append(out, "000000000"...)
		}
		out = append(out, '\n')
		data = rest
	}
	return out
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
