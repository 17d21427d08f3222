package serve

import (
	"context"
	"sync/atomic"
)

// queue bounds the sequences generating at once (slots) and those waiting for a slot.
// A request that finds every slot taken and the wait list full fails at once with ErrQueueFull.
type queue struct {
	slots    chan struct{}
	maxWait  int64
	waiting  atomic.Int64
	active   atomic.Int64
	onChange func(waiting, active int64)
}

func newQueue(concurrent, maxWait int, onChange func(waiting, active int64)) *queue {
	if onChange == nil {
		onChange = func(int64, int64) {}
	}
	return &queue{slots: make(chan struct{}, concurrent), maxWait: int64(maxWait), onChange: onChange}
}

// acquire takes a slot, waiting in line if there is room in the queue. release must be called once after success.
func (q *queue) acquire(ctx context.Context) (release func(), err error) {
	select {
	case q.slots <- struct{}{}:
	default:
		if q.waiting.Add(1) > q.maxWait {
			q.waiting.Add(-1)
			return nil, ErrQueueFull
		}
		q.report()
		select {
		case q.slots <- struct{}{}:
			q.waiting.Add(-1)
		case <-ctx.Done():
			q.waiting.Add(-1)
			q.report()
			return nil, ctx.Err()
		}
	}
	q.active.Add(1)
	q.report()
	var done atomic.Bool
	return func() {
		if done.Swap(true) {
			return
		}
		q.active.Add(-1)
		<-q.slots
		q.report()
	}, nil
}

func (q *queue) report() { q.onChange(q.waiting.Load(), q.active.Load()) }
