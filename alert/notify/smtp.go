package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// smtpSender delivers rendered e-mails with net/smtp: one session per
// message (alert e-mail is rare; no idle connection to keep alive).
type smtpSender struct {
	cfg      SMTPConfig
	addr     string
	password string
	tls      *tls.Config
	from     string
	to       []string
}

func newSMTPSender(cfg SMTPConfig) (*smtpSender, error) {
	pw, err := readSecret("smtp.password_file", cfg.Password, cfg.PasswordFile)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{ServerName: cfg.ServerName, InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if tc.ServerName == "" {
		tc.ServerName = strings.Trim(cfg.Host, "[]")
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf(keyPrefix+"smtp.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf(keyPrefix+"smtp.ca_file: no PEM certificate in %s", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	from, _ := mail.ParseAddress(cfg.From)
	s := &smtpSender{cfg: cfg, addr: net.JoinHostPort(strings.Trim(cfg.Host, "[]"), strconv.Itoa(cfg.Port)), password: pw, tls: tc, from: from.Address}
	for _, t := range cfg.To {
		a, _ := mail.ParseAddress(t)
		s.to = append(s.to, a.Address)
	}
	return s, nil
}

func (s *smtpSender) deliver(ctx context.Context, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", s.addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if s.cfg.TLS == SMTPTLS {
		tc := tls.Client(conn, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("smtp %s: tls: %w", s.addr, err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.tls.ServerName)
	if err != nil {
		return smtpErr(s.addr, "greeting", err)
	}
	defer c.Close()
	if s.cfg.Hello != "" {
		if err := c.Hello(s.cfg.Hello); err != nil {
			return smtpErr(s.addr, "EHLO", err)
		}
	}
	if s.cfg.TLS == SMTPStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return permanent(fmt.Errorf("smtp %s: server does not offer STARTTLS (smtp.tls: starttls)", s.addr))
		}
		if err := c.StartTLS(s.tls); err != nil {
			return smtpErr(s.addr, "STARTTLS", err)
		}
	}
	if s.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return permanent(fmt.Errorf("smtp %s: server offers no AUTH but smtp.username is set", s.addr))
		}
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.password, s.tls.ServerName)); err != nil {
			return smtpErr(s.addr, "AUTH", err)
		}
	}
	if err := c.Mail(s.from); err != nil {
		return smtpErr(s.addr, "MAIL FROM", err)
	}
	for _, to := range s.to {
		if err := c.Rcpt(to); err != nil {
			return smtpErr(s.addr, "RCPT TO "+to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpErr(s.addr, "DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return smtpErr(s.addr, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpErr(s.addr, "DATA", err)
	}
	_ = c.Quit()
	return nil
}

// smtpErr wraps an SMTP error; 5xx replies are permanent.
func smtpErr(addr, step string, err error) error {
	err = fmt.Errorf("smtp %s: %s: %w", addr, step, err)
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return permanent(err)
	}
	return err
}

// mailRenderer builds the e-mail of a message.
type mailRenderer struct {
	cfg     SMTPConfig
	subject *template.Template
	host    string // for Message-ID
}

func newMailRenderer(cfg SMTPConfig) (*mailRenderer, error) {
	t, err := template.New("subject").Option("missingkey=zero").Parse(cfg.Subject)
	if err != nil {
		return nil, fmt.Errorf(keyPrefix+"smtp.subject: %w", err)
	}
	h, _ := os.Hostname()
	if h == "" {
		h = "vmflow"
	}
	return &mailRenderer{cfg: cfg, subject: t, host: h}, nil
}

// Subject renders the subject line of a message (one line, at most 200 characters).
func (r *mailRenderer) Subject(m *Message) (string, error) {
	var b strings.Builder
	if err := r.subject.Execute(&b, m); err != nil {
		return "", fmt.Errorf(keyPrefix+"smtp.subject: %w", err)
	}
	s := strings.Join(strings.Fields(b.String()), " ")
	if rs := []rune(s); len(rs) > 200 {
		s = string(rs[:199]) + "…"
	}
	return s, nil
}

// render returns the whole RFC 5322 message.
func (r *mailRenderer) render(m *Message, now time.Time) ([]byte, error) {
	subj, err := r.Subject(m)
	if err != nil {
		return nil, err
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", r.cfg.From)
	hdr("To", strings.Join(r.cfg.To, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", subj))
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+r.host+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("Auto-Submitted", "auto-generated")
	hdr("X-Vmflow-Status", m.Status)
	hdr("X-Vmflow-Group", mime.QEncoding.Encode("utf-8", m.GroupKey))
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(MailBody(m, now), "\n", "\r\n")))
	_ = qp.Close()
	return b.Bytes(), nil
}

// MailBody is the plain-text body of a message: per alert what, value
// against threshold or baseline, since when, and the link.
func MailBody(m *Message, now time.Time) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	what := "alerts"
	if n := len(m.Firing) + len(m.Resolved); n == 1 {
		what = "alert"
	}
	w("%s %s: %d %s", m.Severity, m.StatusUpper(), len(m.Firing)+len(m.Resolved), what)
	if len(m.GroupLabels) > 0 {
		w(" for %s", labelString(m.GroupLabels))
	}
	if m.Repeat {
		w(" (reminder: still firing)")
	}
	w("\n")
	section := func(title string, alerts []Alert) {
		if len(alerts) == 0 {
			return
		}
		w("\n%s (%d)\n", title, len(alerts))
		for _, a := range alerts {
			w("\n* %s\n", summaryOf(&a))
			if d := a.Annotations["description"]; d != "" {
				w("  %s\n", d)
			}
			an := deliveredAnnotations(&a)
			line := "  value: " + an["value"]
			if t := an["threshold"]; t != "" {
				line += "   threshold: " + t
			}
			if bl := an["baseline"]; bl != "" {
				line += "   baseline: " + bl
			}
			if p := an["peak"]; p != "" && p != an["value"] {
				line += "   peak: " + p
			}
			w("%s\n", line)
			if a.State == StateResolved && !a.EndsAt.IsZero() {
				w("  fired: %s, resolved %s (after %s)\n", fmtTime(a.StartsAt), fmtTime(a.EndsAt), a.EndsAt.Sub(a.StartsAt).Round(time.Second))
			} else if !a.StartsAt.IsZero() {
				w("  since: %s (%s ago)\n", fmtTime(a.StartsAt), now.Sub(a.StartsAt).Round(time.Second))
			}
			w("  severity: %s   rule: %s   kind: %s\n", severityOf(&a), a.Rule, a.Kind)
			w("  labels: %s\n", labelString(deliveredLabels(&a)))
			link := a.GeneratorURL
			if link == "" {
				link = a.Annotations["link"]
			}
			if link = absURL(m.ExternalURL, link); link != "" {
				w("  link: %s\n", link)
			}
		}
	}
	section("FIRING", m.Firing)
	section("RESOLVED", m.Resolved)
	w("\n-- \nvmflow alert delivery (%s)\n", m.Receiver)
	return b.String()
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") }

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, " ")
}
