// The metrics endpoint (listen.metrics): Prometheus's text format over
// plain HTTP at GET /metrics, served from the server's own registry. It
// bypasses the mail listeners' connection limits (a scraper is one
// client, and must get through when the mail ports are flooded) and has
// no authentication: it belongs on loopback or a management network.

package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"loft/internal/metrics"
)

// Timeouts of the metrics endpoint: a scrape is one small request, and a
// scraper that dawdles must not hold a connection.
const (
	metricsReadTimeout  = 10 * time.Second
	metricsWriteTimeout = 30 * time.Second // the store's totals query included
)

// metricsService serves m over HTTP.
type metricsService struct{ srv *http.Server }

func newMetricsService(m *metrics.Metrics, log *slog.Logger) *metricsService {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Loft: metrics are at /metrics\n")
	})
	return &metricsService{srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: metricsReadTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		ErrorLog:          slog.NewLogLogger(log.With("listener", "metrics").Handler(), slog.LevelWarn),
	}}
}

// Serve serves until Shutdown or Close, which are not failures.
func (m *metricsService) Serve(l net.Listener) error {
	if err := m.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (m *metricsService) Shutdown(ctx context.Context) error { return m.srv.Shutdown(ctx) }
func (m *metricsService) Close() error                       { return m.srv.Close() }

// usage is the metrics' view of the store's totals, asked at each scrape.
func (s *Server) usage(ctx context.Context) (metrics.Usage, error) {
	t, err := s.Store.Totals(ctx)
	if err != nil {
		return metrics.Usage{}, err
	}
	return metrics.Usage{Accounts: t.Accounts, Messages: t.Messages, Bytes: t.Usage}, nil
}
