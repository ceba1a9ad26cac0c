// Package ship tests vmflow the way an operator runs it: the built binary
// started from another directory, reloaded with SIGHUP, talking sd_notify
// to a (stand-in) systemd socket, and the .deb from `make package`
// installed with dpkg. See README.md, "Running as a service".
package ship
