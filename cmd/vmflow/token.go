package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vmflow/vmflow/api/auth"
	"github.com/vmflow/vmflow/cmd/vmflow/app"
)

const tokenUsage = "usage: vmflow token create NAME --role viewer|operator|admin [--tenant ID]... [--expires 720h|2027-01-01T00:00:00Z] [--file FILE | --config FILE]\n"

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// runToken: vmflow token create NAME ... prints a new API token once on
// stdout and appends its hashed entry to the token file (api.auth.tokens_file
// of the configuration, or --file). The running vmflow picks it up within
// a second; revoke a token by deleting its line.
func runToken(args, environ []string, stdout, stderr io.Writer, now time.Time) int {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprint(stderr, tokenUsage)
		return 2
	}
	args = args[1:]
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("vmflow token create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	role := fs.String("role", "", "viewer, operator or admin (required)")
	var tenants listFlag
	fs.Var(&tenants, "tenant", "tenant id the token is scoped to (repeat or comma-separate; none: the whole cloud)")
	expires := fs.String("expires", "", "validity: a duration from now (720h) or an RFC 3339 time; none: no expiry")
	file := fs.String("file", "", "token file (default: api.auth.tokens_file of the configuration)")
	configPath := fs.String("config", "", "YAML configuration file (default "+DefaultConfigPath+" when it exists)")
	fs.Usage = func() { fmt.Fprint(stderr, tokenUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vmflow token create: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if name == "" {
		fmt.Fprint(stderr, tokenUsage)
		return 2
	}
	r, err := auth.ParseRole(*role)
	if err != nil {
		fmt.Fprintf(stderr, "vmflow token create: --role: %v\n", err)
		return 2
	}
	e := auth.TokenEntry{Name: name, Role: r, Tenants: tenants}
	if *expires != "" {
		if d, err := time.ParseDuration(*expires); err == nil && d > 0 {
			e.Expires = now.Add(d).UTC().Truncate(time.Second)
		} else if t, err := time.Parse(time.RFC3339, *expires); err == nil {
			e.Expires = t.UTC()
		} else {
			fmt.Fprintf(stderr, "vmflow token create: --expires: %q is neither a positive duration nor an RFC 3339 time\n", *expires)
			return 2
		}
	}
	path := *file
	if path == "" {
		cfg, _, err := app.Load(configFile(*configPath), environ)
		if err != nil {
			fmt.Fprintf(stderr, "vmflow: %v\n", err)
			return 1
		}
		path = cfg.API.Auth.TokensFile
	}
	if path == "" {
		fmt.Fprintf(stderr, "vmflow token create: no token file: set api.auth.tokens_file or give --file\n")
		return 1
	}
	tok, err := auth.AppendToken(path, e, now)
	if err != nil {
		fmt.Fprintf(stderr, "vmflow token create: %v\n", err)
		return 1
	}
	scope := "all tenants"
	if len(tenants) > 0 {
		scope = "tenants " + strings.Join(tenants, ",")
	}
	exp := "never expires"
	if !e.Expires.IsZero() {
		exp = "expires " + e.Expires.Format(time.RFC3339)
	}
	fmt.Fprintf(stderr, "vmflow: token %q (%s, %s, %s) added to %s; it is shown only now:\n", name, r, scope, exp, path)
	fmt.Fprintln(stdout, tok)
	return 0
}
