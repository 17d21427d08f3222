package train

import (
	"fmt"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// Graph building blocks with hand-written gradients, for speed on GoMLX's pure-Go backend.
//
//   - Exponentials: the backend runs its matrix products in AVX-512 (Go's simd package) and leaves the
//     upper vector state dirty; every later math.Exp (which mixes VEX-encoded FMA with legacy SSE) then
//     costs ~800 ns instead of ~8 ns on these CPUs. The backend's Exp, Logistic and Tanh ops use
//     math.Exp, and so do the decomposed graphs autodiff builds for Softmax and LogSoftmax. Its fused
//     Softmax kernel has its own float32 exponential and stays fast, so every exponential here
//     (attention, SiLU, cross-entropy) goes through that kernel, with the gradients written out.
//   - Small matrix products: below smallMatMulFlops the backend's kernel for y = x·wᵀ (w [out, in],
//     the Hugging Face layout) does a horizontal vector sum per output and runs ~20× slower than its
//     kernel for y = x·w. dense reads w transposed in the forward pass, and its gradient is written
//     so that the input gradient dy·w runs in the fast layout too.
//
// The gradients are attached to the nodes built here through GoMLX's VJP table: the table entries of
// the node types involved are wrapped once, and nodes registered with withVJP (per graph, released
// when the graph is built) use their own function; all other nodes keep GoMLX's.

type vjpKey struct {
	graph graph.GraphId
	node  graph.NodeId
}

var customVJPs sync.Map // vjpKey → graph.VJP

func init() {
	for _, t := range []graph.NodeType{graph.NodeTypeDotGeneral, graph.NodeTypeFusedSoftmax, graph.NodeTypeMul} {
		orig := graph.VJPRegistration[t]
		graph.VJPRegistration[t] = func(node *Node, v []*Node, s shapes.Shape) []*Node {
			if fn, ok := customVJPs.Load(vjpKey{node.Graph().GraphId(), node.Id()}); ok {
				return fn.(graph.VJP)(node, v, s)
			}
			if orig == nil {
				panic(fmt.Sprintf("no gradient defined for %s", node))
			}
			return orig(node, v, s)
		}
	}
}

// withVJP gives node n the gradient fn (for the node types wrapped in init).
func withVJP(n *Node, fn graph.VJP) *Node {
	customVJPs.Store(vjpKey{n.Graph().GraphId(), n.Id()}, fn)
	return n
}

// releaseVJPs forgets the gradients registered for g; graph-building functions defer it.
func releaseVJPs(g *Graph) {
	id := g.GraphId()
	customVJPs.Range(func(k, _ any) bool {
		if k.(vjpKey).graph == id {
			customVJPs.Delete(k)
		}
		return true
	})
}

// hasFusedSoftmax reports whether the backend has the fused softmax kernel (the Go backend does;
// XLA fuses the plain ops itself).
func hasFusedSoftmax(g *Graph) bool {
	return g.Backend().Capabilities().Operations[compute.OpTypeFusedSoftmax]
}

// softmax over the last axis; gradient p·(v − Σ v·p).
func softmax(x *Node) *Node {
	if !hasFusedSoftmax(x.Graph()) {
		return Softmax(x, -1)
	}
	p := BackendFusedSoftmax(x, x.Rank()-1)
	return withVJP(p, func(p *Node, v []*Node, _ shapes.Shape) []*Node {
		return []*Node{Mul(p, Sub(v[0], ReduceAndKeep(Mul(v[0], p), ReduceSum, -1)))}
	})
}

// sigmoid is σ(x) = softmax([x, 0])₀ through the fused kernel, without gradient.
func sigmoid(x *Node) *Node {
	if !hasFusedSoftmax(x.Graph()) {
		return StopGradient(Sigmoid(x))
	}
	pair := Stack([]*Node{x, ZerosLike(x)}, -1)
	p := BackendFusedSoftmax(pair, pair.Rank()-1)
	return StopGradient(Reshape(SliceAxis(p, -1, AxisElem(0)), x.Shape().Dimensions...))
}

// silu is x·σ(x); gradient σ·(1 + x·(1−σ)).
func silu(x *Node) *Node {
	s := sigmoid(x)
	return withVJP(Mul(x, s), func(_ *Node, v []*Node, _ shapes.Shape) []*Node {
		return []*Node{Mul(v[0], Mul(s, OnePlus(Mul(x, OneMinus(s))))), ZerosLike(s)}
	})
}

// crossEntropy returns, for logits [..., vocab] and int32 targets [...] (valid ids), the negative
// log-likelihood of each target: logsumexp(x) − x[target], with logsumexp = max(x) − log(max p)
// (p = softmax(x); its largest value is 1/Σexp(x−max), never below 1/vocab). Gradient:
// (p − onehot(target)) times the adjoint.
func crossEntropy(logits, targets *Node) *Node {
	vocab := logits.Shape().Dimensions[logits.Rank()-1]
	p := StopGradient(softmax(logits))
	onehot := OneHot(targets, vocab, logits.DType())
	logSumExp := StopGradient(Sub(ReduceMax(logits, -1), Log(ReduceMax(p, -1))))
	// picked = x·onehot: its adjoint is −(adjoint of nll) broadcast over the vocabulary.
	picked := withVJP(Mul(logits, onehot), func(_ *Node, v []*Node, _ shapes.Shape) []*Node {
		return []*Node{Mul(Neg(v[0]), Sub(p, onehot)), ZerosLike(onehot)}
	})
	return Sub(logSumExp, ReduceSum(picked, -1))
}

// smallMatMulFlops is the Go backend's threshold (batch·rows·cols·contraction) below which its
// "small" matrix-product kernels run.
const smallMatMulFlops = 4 << 20

// dense is x·wᵀ for w [out, in] (Hugging Face layout), contracting x's last axis.
func dense(x, w *Node) *Node {
	dims := w.Shape().Dimensions
	out, in := dims[0], dims[1]
	n := x.Shape().Size() / in
	if n*in*out >= smallMatMulFlops {
		return DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil)
	}
	y := DotGeneral(x, []int{x.Rank() - 1}, nil, Transpose(w, 0, 1), []int{0}, nil)
	return withVJP(y, func(node *Node, v []*Node, _ shapes.Shape) []*Node {
		x, wt := node.Inputs()[0], node.Inputs()[1] // wt = wᵀ [in, out]
		dy := v[0]
		dx := DotGeneral(dy, []int{dy.Rank() - 1}, nil, Transpose(wt, 0, 1), []int{0}, nil)
		dwt := DotGeneral(Reshape(x, n, in), []int{0}, nil, Reshape(dy, n, out), []int{0}, nil)
		return []*Node{dx, dwt}
	})
}

// batchedMatMulT is a·bᵀ for a [B, m, k] and b [B, n, k] → [B, m, n] (attention scores); its
// gradient avoids the identity transposes GoMLX's generic one adds.
func batchedMatMulT(a, b *Node) *Node {
	y := DotGeneral(a, []int{2}, []int{0}, b, []int{2}, []int{0})
	return withVJP(y, func(node *Node, v []*Node, _ shapes.Shape) []*Node {
		a, b := node.Inputs()[0], node.Inputs()[1]
		da := DotGeneral(v[0], []int{2}, []int{0}, b, []int{1}, []int{0}) // [B, m, k]
		db := DotGeneral(v[0], []int{1}, []int{0}, a, []int{1}, []int{0}) // [B, n, k]
		return []*Node{da, db}
	})
}

// batchedMatMul is a·b for a [B, m, n] and b [B, n, k] → [B, m, k] (attention output).
func batchedMatMul(a, b *Node) *Node {
	y := DotGeneral(a, []int{2}, []int{0}, b, []int{1}, []int{0})
	return withVJP(y, func(node *Node, v []*Node, _ shapes.Shape) []*Node {
		a, b := node.Inputs()[0], node.Inputs()[1]
		da := DotGeneral(v[0], []int{2}, []int{0}, b, []int{2}, []int{0}) // [B, m, n]
		db := DotGeneral(a, []int{1}, []int{0}, v[0], []int{1}, []int{0}) // [B, n, k]
		return []*Node{da, db}
	})
}
