//go:build !linux

package auth

import "os"

func inode(os.FileInfo) uint64 { return 0 }
