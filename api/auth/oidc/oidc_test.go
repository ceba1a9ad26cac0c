package oidc

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestConfigValidate(t *testing.T) {
	assert.NoError(t, DefaultConfig().Validate(), "off")
	c := DefaultConfig()
	c.Issuer = "https://sso.example"
	assert.ErrorContains(t, c.Validate(), "api.oidc.client_id")
	c.ClientID = "vmflow"
	assert.NoError(t, c.Validate())
	c.RedirectURL = "https://vmflow.example/elsewhere"
	assert.ErrorContains(t, c.Validate(), "api.oidc.redirect_url")
	c.RedirectURL = "https://vmflow.example/auth/callback"
	c.DefaultRole = "root"
	assert.ErrorContains(t, c.Validate(), "api.oidc.default_role")
	c.DefaultRole, c.RoleClaim = "", ""
	assert.ErrorContains(t, c.Validate(), "api.oidc.role_claim")
	c.Issuer = "sso"
	assert.ErrorContains(t, c.Validate(), "api.oidc.issuer")
}

func TestLocalNext(t *testing.T) {
	for in, want := range map[string]string{"": "/", "/#/pairs": "/#/pairs", "//evil": "/", "https://evil": "/", "/\\evil": "/"} {
		assert.Equal(t, want, localNext(in), in)
	}
}
