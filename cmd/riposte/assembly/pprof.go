package assembly

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
)

// startPprof serves Go's profiler on RIPOSTE_PPROF (an address such as
// 127.0.0.1:6060) when that variable is set: for profiling benchmarks,
// never on by default.
func startPprof(log *slog.Logger) {
	addr := os.Getenv("RIPOSTE_PPROF")
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		log.Info("pprof listening", "addr", addr)
		if err := http.ListenAndServe(addr, mux); err != nil {
			log.Warn("pprof", "err", err)
		}
	}()
}
