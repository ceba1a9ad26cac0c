package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// stopContext returns a context that the first SIGINT or SIGTERM cancels:
// run then stops vmflow cleanly (App.Stop: the open window is flushed and
// the sinks drain within shutdown.timeout). A second signal during that
// stop exits the process at once with status 128+signal (130 for SIGINT,
// 143 for SIGTERM); what the InfluxDB writer had already spooled survives.
func stopContext(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		s := <-ch
		fmt.Fprintf(stderr, "vmflow: second %v: exiting at once, without finishing the stop\n", s)
		os.Exit(exitStatus(s))
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel()
	}
}

func exitStatus(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}
