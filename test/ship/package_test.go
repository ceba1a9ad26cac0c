package ship

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requirePackaging skips the package test unless VMFLOW_INTEGRATION=1 (it
// installs a package on this machine), and fails it there when a tool is
// missing.
func requirePackaging(t *testing.T) {
	t.Helper()
	if os.Getenv("VMFLOW_INTEGRATION") != "1" {
		t.Skip("installs a .deb on this machine: set VMFLOW_INTEGRATION=1")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the package test needs root (dpkg -i)")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "systemd-analyze", "make", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (scripts/install-deps.sh installs it)", tool)
		}
	}
	if exec.Command("dpkg", "-s", "vmflow").Run() == nil {
		t.Fatal("a vmflow package is already installed here; remove it first (dpkg --purge vmflow)")
	}
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %v:\n%s", name, args, out)
	return string(out)
}

// `make package` builds a .deb (and .rpm) with the expected contents; it
// installs with dpkg, its units pass systemd-analyze verify, the installed
// binary run as the vmflow user with the installed config answers health;
// then it is removed and purged.
func TestPackageInstallsAndRuns(t *testing.T) {
	requirePackaging(t)
	dist := t.TempDir()
	run(t, repoRoot, "make", "--no-print-directory", "package", "DIST="+dist)
	version := strings.TrimSpace(run(t, repoRoot, "bash", "scripts/version.sh"))
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist, "*.rpm"))
	require.Len(t, debs, 1, "one .deb in %s", dist)
	require.Len(t, rpms, 1, "one .rpm in %s", dist)
	deb := debs[0]
	if fi, err := os.Stat(rpms[0]); assert.NoError(t, err) {
		assert.Greater(t, fi.Size(), int64(1<<20), "the rpm holds the binary")
	}

	info := run(t, "", "dpkg-deb", "--info", deb)
	assert.Contains(t, info, "Package: vmflow")
	assert.Contains(t, info, "Version: "+version)
	for _, script := range []string{"postinst", "prerm", "postrm", "conffiles"} {
		assert.Contains(t, info, script)
	}
	conffiles := run(t, "", "dpkg-deb", "--info", deb, "conffiles")
	assert.Contains(t, conffiles, "/etc/vmflow/vmflow.yaml")
	assert.Contains(t, conffiles, "/etc/vmflow/inventory.yaml")
	contents := run(t, "", "dpkg-deb", "--contents", deb)
	for _, f := range []string{
		"./usr/bin/vmflow", "./etc/vmflow/vmflow.yaml", "./etc/vmflow/inventory.yaml",
		"./usr/lib/systemd/system/vmflow.service", "./usr/lib/systemd/system/vmflow-probe.service",
		"./var/lib/vmflow/", "./usr/share/doc/vmflow/README.md", "./usr/share/doc/vmflow/examples/vmflow-influx.yaml",
	} {
		assert.Regexp(t, regexp.MustCompile(`(?m) `+regexp.QuoteMeta(f)+`$`), contents, "package contents")
	}
	t.Logf("%s: %d files", filepath.Base(deb), strings.Count(contents, "\n"))

	_, userErr := user.Lookup("vmflow")
	createdUser := userErr != nil
	t.Cleanup(func() {
		_ = exec.Command("dpkg", "--purge", "vmflow").Run()
		if createdUser {
			_ = exec.Command("userdel", "vmflow").Run()
			_ = exec.Command("groupdel", "vmflow").Run()
		}
	})
	run(t, "", "dpkg", "-i", deb)

	// What the maintainer script set up.
	u, err := user.Lookup("vmflow")
	require.NoError(t, err, "postinst creates the vmflow user")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	fi, err := os.Stat("/var/lib/vmflow")
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o750), fi.Mode().Perm())
	assert.Equal(t, uint32(uid), fi.Sys().(*syscall.Stat_t).Uid, "/var/lib/vmflow belongs to vmflow")
	fi, err = os.Stat("/etc/vmflow/vmflow.yaml")
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
	assert.Equal(t, uint32(gid), fi.Sys().(*syscall.Stat_t).Gid, "vmflow can read its config, others cannot")

	// The installed units.
	verify := exec.Command("systemd-analyze", "verify", "/usr/lib/systemd/system/vmflow.service", "/usr/lib/systemd/system/vmflow-probe.service")
	out, err := verify.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify prints nothing for good units (it exits 0 on warnings)")
	for _, unit := range []string{"vmflow.service", "vmflow-probe.service"} {
		sec := run(t, "", "systemd-analyze", "security", "--offline=true", "/usr/lib/systemd/system/"+unit)
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`).FindStringSubmatch(sec)
		require.NotNil(t, m, sec)
		score, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("systemd-analyze security --offline=true %s: %s %s", unit, m[1], m[2])
		assert.LessOrEqual(t, score, 2.0, "%s exposure", unit)
	}

	// The installed binary, as the vmflow user, with the installed config,
	// ports moved off the defaults (other tests may run beside this one).
	port := freePort(t)
	cmd := exec.Command("/usr/bin/vmflow", "--config", "/etc/vmflow/vmflow.yaml")
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, portEnv(port)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	p := startCmd(t, cmd, port)
	var h struct {
		Status string `json:"status"`
		Build  struct {
			Version string `json:"version"`
		} `json:"build"`
		Config struct {
			File string `json:"file"`
		} `json:"config"`
	}
	code, body := p.get(t, "/api/v1/health", &h)
	require.Equal(t, 200, code, body)
	assert.Equal(t, "ok", h.Status)
	assert.Equal(t, version, h.Build.Version)
	assert.Equal(t, "/etc/vmflow/vmflow.yaml", h.Config.File)
	assert.Contains(t, p.vmNames(t), "vm1", "/etc/vmflow/inventory.yaml, relative to the config")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	p.stop(t)
	assert.Contains(t, p.out.String(), "SIGHUP: reloading")

	// Remove keeps the configuration; purge removes it and the state.
	run(t, "", "dpkg", "-r", "vmflow")
	_, err = os.Stat("/usr/bin/vmflow")
	assert.True(t, os.IsNotExist(err), "binary removed")
	_, err = os.Stat("/etc/vmflow/vmflow.yaml")
	assert.NoError(t, err, "dpkg -r keeps conffiles")
	run(t, "", "dpkg", "--purge", "vmflow")
	for _, p := range []string{"/etc/vmflow/vmflow.yaml", "/var/lib/vmflow"} {
		_, err = os.Stat(p)
		assert.True(t, os.IsNotExist(err), "%s removed by purge", p)
	}
}
