package merge

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/medassist/medassist/model"
)

// Adapter is a LoRA adapter opened for merging into a base model with config Base.
type Adapter struct {
	Config *model.AdapterConfig
	// Pattern is target_modules when the adapter config gave it as a regular expression ("" for a list).
	Pattern string
	// Targets are the base weights the adapter changes, with the names of their A and B tensors.
	Targets map[string]Target

	weights *model.Weights
}

// Target locates one LoRA pair: base weight W [out, in] += scale · B [out, r] · A [r, in].
type Target struct {
	Layer      int
	Projection model.Projection
	A, B       string // tensor names in the adapter file
}

// Close releases the adapter's mapped weights.
func (a *Adapter) Close() error { return a.weights.Close() }

// peftPrefix is what PEFT puts before a base module's name in adapter tensor names, derived from
// model's names so that no name is spelled here.
var peftPrefix = strings.TrimSuffix(model.LoraA(0, model.QProj),
	strings.TrimSuffix(model.ProjWeight(0, model.QProj), ".weight")+".lora_A.weight")

// unsupportedKeys are adapter_config.json keys whose non-empty value changes the merge in ways not
// implemented here; they are refused rather than silently ignored.
var unsupportedKeys = []string{"rank_pattern", "alpha_pattern", "use_dora", "modules_to_save", "trainable_token_indices", "target_parameters"}

// OpenAdapter reads a PEFT LoRA adapter dir (adapter_config.json + adapter_model.safetensors), as
// written by medassist or by Hugging Face PEFT's save_pretrained, and checks its tensors against
// the base model config: every targeted module must have both A and B with matching shapes, and the
// file must hold nothing else.
func OpenAdapter(dir string, base *model.Config) (*Adapter, error) {
	cfg, pattern, layers, err := loadAdapterConfig(dir, base)
	if err != nil {
		return nil, err
	}
	w, err := model.OpenSafetensors(filepath.Join(dir, model.AdapterWeightsFile))
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w (expected PEFT's %s)", dir, err, model.AdapterWeightsFile)
	}
	a := &Adapter{Config: cfg, Pattern: pattern, Targets: map[string]Target{}, weights: w}
	if err := a.matchTensors(base, layers); err != nil {
		w.Close()
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	return a, nil
}

// loadAdapterConfig reads adapter_config.json and refuses the keys the merge cannot apply. A
// target_modules pattern is resolved against the base model's module names (full match, as PEFT
// does) into the list of projections it selects. layers is the set of layers the adapter applies
// to (nil: all).
func loadAdapterConfig(dir string, base *model.Config) (*model.AdapterConfig, string, map[int]bool, error) {
	cfg, err := model.ReadAdapterConfig(dir)
	if err != nil {
		return nil, "", nil, err
	}
	path := filepath.Join(dir, model.AdapterConfigFile)
	var errs []error
	for _, k := range unsupportedKeys {
		if v := cfg.Raw(k); nonEmpty(v) {
			errs = append(errs, fmt.Errorf("%s = %v is not supported", k, v))
		}
	}
	layers, err := layersToTransform(cfg.Raw("layers_to_transform"), base.NumHiddenLayers)
	if err != nil {
		errs = append(errs, err)
	}
	pattern := cfg.TargetPattern
	if pattern != "" {
		projs, err := resolvePattern(pattern, base, layers)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.TargetModules, cfg.TargetPattern = projs, ""
	}
	if err := errors.Join(errs...); err != nil {
		return nil, "", nil, fmt.Errorf("adapter config: %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, "", nil, fmt.Errorf("adapter config: %s: %w", path, err)
	}
	return cfg, pattern, layers, nil
}

func nonEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// layersToTransform reads PEFT's layers_to_transform (null, an int or a list of ints).
func layersToTransform(v any, numLayers int) (map[int]bool, error) {
	var list []any
	switch x := v.(type) {
	case nil:
		return nil, nil
	case float64:
		list = []any{x}
	case []any:
		list = x
	default:
		return nil, fmt.Errorf("layers_to_transform = %v: must be an int or a list of ints", v)
	}
	out := map[int]bool{}
	for _, e := range list {
		f, ok := e.(float64)
		if !ok || f != float64(int(f)) || int(f) < 0 || int(f) >= numLayers {
			return nil, fmt.Errorf("layers_to_transform = %v: must be layer indices in [0, %d)", v, numLayers)
		}
		out[int(f)] = true
	}
	return out, nil
}

// moduleName is the base model's module path of a projection, e.g. model.layers.0.self_attn.q_proj,
// the string PEFT matches target_modules against.
func moduleName(layer int, p model.Projection) string {
	return strings.TrimSuffix(model.ProjWeight(layer, p), ".weight")
}

// resolvePattern lists the projections whose module names a target_modules regular expression
// fully matches in at least one (selected) layer; it must select the same projections in every
// selected layer, since medassist's adapter config is a list of projection names.
func resolvePattern(pattern string, base *model.Config, layers map[int]bool) ([]string, error) {
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, fmt.Errorf("target_modules pattern %q: %w (Go's RE2 syntax lacks look-arounds and back-references; list the modules instead)", pattern, err)
	}
	var selected []string
	var first []string
	for i := 0; i < base.NumHiddenLayers; i++ {
		if layers != nil && !layers[i] {
			continue
		}
		var here []string
		for _, p := range model.Projections {
			if re.MatchString(moduleName(i, p)) {
				here = append(here, string(p))
			}
		}
		if first == nil {
			first, selected = here, here
		} else if strings.Join(here, ",") != strings.Join(first, ",") {
			return nil, fmt.Errorf("target_modules pattern %q selects %v in layer %d but %v in the first layer; per-layer targets are not supported", pattern, here, i, first)
		}
	}
	if len(selected) == 0 {
		return nil, fmt.Errorf("target_modules pattern %q matches no projection of the base model (module names look like %s)", pattern, moduleName(0, model.QProj))
	}
	return selected, nil
}

// canonicalName maps the spellings of an adapter tensor name found in the wild to model's:
// the base_model.model. prefix may be missing, and older PEFT versions kept the adapter's name
// (lora_A.default.weight).
func canonicalName(name string) string {
	if !strings.HasPrefix(name, peftPrefix) {
		name = peftPrefix + name
	}
	for _, ab := range []string{".lora_A.", ".lora_B."} {
		if i := strings.Index(name, ab); i >= 0 {
			rest := name[i+len(ab):]
			if j := strings.LastIndex(rest, "."); j > 0 && rest[j:] == ".weight" {
				name = name[:i+len(ab)] + "weight"
			}
		}
	}
	return name
}

// matchTensors pairs the adapter's tensors with the base's targeted weights and checks shapes.
func (a *Adapter) matchTensors(base *model.Config, layers map[int]bool) error {
	projs, err := a.Config.Projections()
	if err != nil {
		return err
	}
	byCanon := map[string]string{}
	for _, n := range a.weights.Names() {
		c := canonicalName(n)
		if prev, dup := byCanon[c]; dup {
			return fmt.Errorf("tensors %s and %s are the same LoRA matrix", prev, n)
		}
		byCanon[c] = n
	}
	used := map[string]bool{}
	var errs []error
	for i := 0; i < base.NumHiddenLayers; i++ {
		if layers != nil && !layers[i] {
			continue
		}
		for _, p := range projs {
			out, in := base.ProjShape(p)
			aName, aOK := byCanon[model.LoraA(i, p)]
			bName, bOK := byCanon[model.LoraB(i, p)]
			if !aOK || !bOK {
				errs = append(errs, fmt.Errorf("missing %s or %s: target_modules lists %s but the weights lack it in layer %d (was the adapter trained on this base?)",
					model.LoraA(i, p), model.LoraB(i, p), p, i))
				continue
			}
			used[aName], used[bName] = true, true
			if err := a.checkShape(aName, a.Config.R, in); err != nil {
				errs = append(errs, err)
			}
			if err := a.checkShape(bName, out, a.Config.R); err != nil {
				errs = append(errs, err)
			}
			a.Targets[model.ProjWeight(i, p)] = Target{Layer: i, Projection: p, A: aName, B: bName}
		}
	}
	var extra []string
	for _, n := range a.weights.Names() {
		if !used[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		errs = append(errs, fmt.Errorf("%d tensors not covered by target_modules %v (modules_to_save, bias or another base model's layers are not supported): %s",
			len(extra), a.Config.TargetModules, strings.Join(head(extra, 5), ", ")))
	}
	return errors.Join(errs...)
}

func (a *Adapter) checkShape(name string, rows, cols int) error {
	ti, _ := a.weights.Info(name)
	if len(ti.Shape) != 2 || ti.Shape[0] != rows || ti.Shape[1] != cols {
		return fmt.Errorf("tensor %s has shape %v, expected [%d %d] (r = %d from adapter_config.json; does the base model match?)",
			name, ti.Shape, rows, cols, a.Config.R)
	}
	if !ti.DType.IsFloat() {
		return fmt.Errorf("tensor %s is %s; expected F32, F16 or BF16", name, ti.DType)
	}
	return nil
}

func head(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... (%d more)", len(s)-n))
	}
	return s
}

// Delta returns scale · B · A for a target as a row-major [out, in] float32 matrix.
func (a *Adapter) Delta(t Target, out, in int) ([]float32, error) {
	A, err := a.weights.Float32(t.A)
	if err != nil {
		return nil, err
	}
	B, err := a.weights.Float32(t.B)
	if err != nil {
		return nil, err
	}
	r := a.Config.R
	scale := float32(a.Config.Scale())
	delta := make([]float32, out*in)
	parallelRows(out, func(o int) {
		row := delta[o*in : (o+1)*in]
		for k := 0; k < r; k++ {
			c := B[o*r+k]
			if c == 0 {
				continue
			}
			ak := A[k*in : (k+1)*in]
			for j, v := range ak {
				row[j] += c * v
			}
		}
		for j := range row {
			row[j] *= scale
		}
	})
	return delta, nil
}
