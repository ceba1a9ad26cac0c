package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
)

// systemd notification (Type=notify): READY=1 once every component is up,
// RELOADING=1/READY=1 around a reload, STOPPING=1 on the way out, and
// WATCHDOG=1 every WatchdogSec/2 while the API answers in-process. Outside
// systemd (no $NOTIFY_SOCKET) these do nothing.

func sdNotify(state string) {
	_, _ = daemon.SdNotify(false, state)
}

func sdReady() { sdNotify(daemon.SdNotifyReady) }

func sdReloading() {
	// MONOTONIC_USEC lets systemd ≥ 253 (Type=notify-reload) match the
	// READY=1 that follows to this reload; older versions ignore it.
	sdNotify(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", daemon.SdNotifyReloading, monotonicUsec()))
}

func sdStopping() { sdNotify(daemon.SdNotifyStopping) }

// watchdog feeds systemd's watchdog until ctx ends, when WatchdogSec is set.
func watchdog(ctx context.Context, a *app.App, log *slog.Logger) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(every / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				cctx, cancel := context.WithTimeout(ctx, every/4)
				err := a.Alive(cctx)
				cancel()
				if err != nil {
					log.Error("watchdog: not feeding systemd", "err", err)
					continue
				}
				sdNotify(daemon.SdNotifyWatchdog)
			}
		}
	}()
}
