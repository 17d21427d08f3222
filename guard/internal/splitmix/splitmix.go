// Package splitmix is SplitMix64, a small deterministic random number generator that gives the
// same sequence on every platform: the guard's generated examples and its trained models must be
// reproducible bit for bit.
package splitmix

// Source is the generator's state; a seed converts to it directly.
type Source uint64

// Next advances the state and returns the next 64 random bits.
func (s *Source) Next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
