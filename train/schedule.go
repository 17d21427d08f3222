package train

import "math"

// Learning-rate schedules, as transformers' get_{cosine,linear,constant}_schedule_with_warmup: the
// multiplier of the peak rate for optimizer step `step` (0-based) of `total`, rising linearly from
// 0 over `warmup` steps.
const (
	ScheduleCosine   = "cosine"
	ScheduleLinear   = "linear"
	ScheduleConstant = "constant"
)

func lrMultiplier(schedule string, step, warmup, total int) float64 {
	if step < warmup {
		return float64(step) / float64(max(1, warmup))
	}
	switch schedule {
	case ScheduleCosine:
		progress := float64(step-warmup) / float64(max(1, total-warmup))
		return max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	case ScheduleLinear:
		return max(0, float64(total-step)/float64(max(1, total-warmup)))
	}
	return 1
}
