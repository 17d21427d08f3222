package train

import (
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/medassist/medassist/train/data"
)

// seqBucket is the granularity of padded sequence lengths: every batch is padded to a multiple of
// it, so that a few compiled graphs (one per width) serve a whole dataset.
const seqBucket = 32

// makeBatch right-pads examples to a common width (the longest, rounded up to a multiple of
// bucket) with id 0 and label IgnoreIndex.
func makeBatch(examples []data.Example, bucket int) *batch {
	width := 0
	for _, ex := range examples {
		width = max(width, len(ex.IDs))
	}
	width = (width + bucket - 1) / bucket * bucket
	ids := make([]int32, len(examples)*width)
	labels := make([]int32, len(examples)*width)
	b := &batch{}
	for i, ex := range examples {
		row := ids[i*width : (i+1)*width]
		lrow := labels[i*width : (i+1)*width]
		copy(row, ex.IDs)
		copy(lrow, ex.Labels)
		for j := len(ex.Labels); j < width; j++ {
			lrow[j] = data.IgnoreIndex
		}
		b.tokens += len(ex.IDs)
		b.targets += nextTokenTargets(ex)
	}
	b.ids = tensors.FromFlatDataAndDimensions(ids, len(examples), width)
	b.labels = tensors.FromFlatDataAndDimensions(labels, len(examples), width)
	return b
}

// nextTokenTargets counts the positions t ≥ 1 with a label: the tokens the loss predicts.
func nextTokenTargets(ex data.Example) int {
	n := 0
	for _, l := range ex.Labels[min(1, len(ex.Labels)):] {
		if l != data.IgnoreIndex {
			n++
		}
	}
	return n
}
