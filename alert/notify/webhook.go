package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"
)

// SignatureHeader carries the webhook body's HMAC-SHA256 when a secret is set.
const SignatureHeader = "X-Vmflow-Signature"

// WebhookPayload is the JSON body of a webhook notification, modelled on
// Alertmanager's webhook payload (version 4) so that existing consumers
// read it.
type WebhookPayload struct {
	Version           string            `json:"version"` // "4"
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"` // firing or resolved
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Repeat            bool              `json:"repeat"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookPayload.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"` // 0001-01-01T00:00:00Z while firing
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	// Value and Peak are vmflow's: the last evaluated value and the
	// highest since StartsAt.
	Value float64 `json:"value"`
	Peak  float64 `json:"peak"`
}

// NewWebhookPayload renders a message as the webhook body.
func NewWebhookPayload(m *Message) WebhookPayload {
	p := WebhookPayload{
		Version:           "4",
		GroupKey:          m.GroupKey,
		Status:            m.Status,
		Receiver:          m.Receiver,
		GroupLabels:       nonNil(m.GroupLabels),
		CommonLabels:      nonNil(m.CommonLabels),
		CommonAnnotations: nonNil(m.CommonAnnotations),
		ExternalURL:       m.ExternalURL,
		Repeat:            m.Repeat,
		Alerts:            []WebhookAlert{},
	}
	for _, a := range m.Alerts() {
		p.Alerts = append(p.Alerts, WebhookAlert{
			Status:       string(a.State),
			Labels:       deliveredLabels(&a),
			Annotations:  deliveredAnnotations(&a),
			StartsAt:     a.StartsAt.UTC(),
			EndsAt:       a.EndsAt.UTC(),
			GeneratorURL: absURL(m.ExternalURL, a.GeneratorURL),
			Fingerprint:  a.Fingerprint,
			Value:        a.Value,
			Peak:         a.Peak,
		})
	}
	return p
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Sign returns the signature header value of body: sha256=hex(HMAC).
func Sign(secret, body []byte) string {
	h := hmac.New(sha256.New, secret)
	h.Write(body)
	return "sha256=" + hex.EncodeToString(h.Sum(nil))
}

// VerifySignature checks a SignatureHeader value in constant time.
func VerifySignature(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

type webhookSender struct {
	url    string
	secret []byte
	client *http.Client
}

func (s *webhookSender) deliver(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vmflow")
	if len(s.secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(s.secret, body))
	}
	return doHTTP(s.client, req)
}

func encodeWebhook(m *Message) ([]byte, error) {
	p := NewWebhookPayload(m)
	return json.Marshal(&p)
}
