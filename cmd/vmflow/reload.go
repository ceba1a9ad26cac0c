package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
)

// reloadOnHUP re-reads the configuration on every SIGHUP until ctx ends
// (systemd's ExecReload sends it), telling systemd RELOADING=1 … READY=1
// around it. The returned function stops listening.
func reloadOnHUP(ctx context.Context, a *app.App, log *slog.Logger) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				log.Info("SIGHUP: reloading the configuration")
				sdReloading()
				a.Reload(ctx)
				sdReady()
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		<-done
	}
}

// setLoader lets the app re-read the same file with the same environment.
func setLoader(a *app.App, file string, environ []string) {
	a.SetLoader(file, func() (app.Config, app.LoadResult, error) {
		return app.Load(file, environ)
	})
}
