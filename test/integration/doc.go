// Package integration holds vmflow's end-to-end tests against a real Open
// vSwitch lab (internal/testenv/ovslab). They need root and the packages
// installed by scripts/install-deps.sh; with VMFLOW_INTEGRATION=1 (as `make
// test` sets) a missing dependency fails them, otherwise they skip.
package integration
