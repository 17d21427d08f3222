package serve

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestQueueBoundsAndOrder(t *testing.T) {
	q := newQueue(1, 1, nil)
	r1, err := q.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r2, err := q.acquire(context.Background())
		if err == nil {
			r2()
		}
		got <- err
	}()
	for q.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	if _, err := q.acquire(context.Background()); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third request: want ErrQueueFull, got %v", err)
	}
	r1()
	r1() // idempotent
	if err := <-got; err != nil {
		t.Fatalf("waiting request: %v", err)
	}
	if q.active.Load() != 0 || q.waiting.Load() != 0 {
		t.Fatalf("active=%d waiting=%d after release", q.active.Load(), q.waiting.Load())
	}
}

func TestQueueWaitCancelled(t *testing.T) {
	q := newQueue(1, 4, nil)
	release, _ := q.acquire(context.Background())
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := q.acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline, got %v", err)
	}
	if q.waiting.Load() != 0 {
		t.Fatal("cancelled waiter still counted")
	}
}
