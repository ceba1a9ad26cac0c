//go:build !race

package aggregate

// recyclePairs: closed windows' Pairs arrays are reused (pairbuf.go).
const recyclePairs = true
