package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		name:    "probe",
		summary: "exit 0 when a URL answers 200 (container health checks without curl)",
		usage:   "[--url URL]",
		flags: func(fs *pflag.FlagSet) {
			fs.String("url", "http://127.0.0.1:7860/readyz", "URL to GET")
			fs.Duration("timeout", 5*time.Second, "request timeout")
		},
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			url, _ := env.fs.GetString("url")
			timeout, _ := env.fs.GetDuration("timeout")
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return usageError{err.Error()}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s answered %s", url, resp.Status)
			}
			return nil
		},
	})
}
