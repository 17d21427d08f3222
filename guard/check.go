package guard

import (
	"fmt"
	"strings"

	"github.com/medassist/medassist/model"
)

// Roles of a conversation's messages.
const (
	RoleSystem    = "system"
	RoleDeveloper = "developer"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// earlierTurns is how many user turns before the latest are looked at for an emergency that
// should keep its guidance in front of later answers.
const earlierTurns = 3

// followUpWords: a latest turn of at most this many words is read as a follow-up of the turn
// before it ("and for kids?").
const followUpWords = 6

// CheckText decides about a single message (a conversation of one user turn).
func (g *Guard) CheckText(text string) Verdict {
	return g.Check([]model.Message{{Role: RoleUser, Content: text}})
}

// Check decides about a conversation's latest user turn, judged with the turns before it:
//   - a client system or developer message is refused when Config.ClientSystem is "reject", or
//     when it tries to change the assistant's instructions;
//   - an unmistakable emergency phrasing or instruction attack in the latest turn decides at once;
//   - a short social turn (thanks, hello) gets a short reply (Allow with a Message: no model);
//   - otherwise the head classifies the turn's embedding; a follow-up (a short turn, or an answer
//     to the assistant's question) is classified with the turn before it as well;
//   - an emergency stated in one of the last user turns keeps its guidance in front of the answer
//     (Verdict.Guidance), or is repeated when the new turn is not a health question.
//
// It never panics and always returns one of the four kinds.
func (g *Guard) Check(conv []model.Message) Verdict {
	last := lastUserTurn(conv)
	if last < 0 {
		return g.invalid(&inputProblem{code: "empty", detail: "the conversation has no user message", user: "empty"})
	}
	text := conv[last].Content
	if p := validate(text, g.cfg.MaxChars); p != nil {
		return g.invalid(p)
	}
	if v, ok := g.screenSystem(conv); ok {
		return v
	}
	earlier := earlierUserTurns(conv[:last], earlierTurns)
	prev, question := contextOf(conv[:last])
	// one encoder run for every text the turns may need
	texts := []string{text}
	if isFollowUp(len(analyze(text).toks), prev, question) {
		texts = append(texts, joinTurns(prev, question, text))
	}
	texts = append(texts, earlier...)
	memo := map[string][]float32{}
	if embs, err := g.emb.Embed(texts); err == nil {
		for i, t := range texts {
			memo[t] = embs[i]
		}
	}
	t := g.judge(text, prev, question, memo)
	if t.Kind == Emergency || t.Kind == Invalid {
		return t
	}
	for i, e := range earlier {
		et := g.judge(e, "", "", memo)
		if et.Kind != Emergency {
			continue
		}
		return g.keepGuidance(t, et, i+1)
	}
	return t
}

// keepGuidance puts an earlier turn's emergency guidance in front of the verdict on the latest turn:
// a health question is answered after the guidance; anything else gets the guidance again.
func (g *Guard) keepGuidance(cur, em Verdict, back int) Verdict {
	reason := fmt.Sprintf("%s (user turn %d back: %s)", cur.Reason, back, em.Reason)
	if cur.Kind == Allow && cur.Message == "" {
		cur.Guidance, cur.Reason = em.Message, reason
		return cur
	}
	em.Reason = fmt.Sprintf("%s: emergency stated %d user turn(s) back, guidance repeated (%s)", em.Code, back, em.Reason)
	return em
}

// earlierUserTurns returns up to n user turns of msgs, latest first, made valid UTF-8.
func earlierUserTurns(msgs []model.Message, n int) []string {
	var out []string
	for i := len(msgs) - 1; i >= 0 && len(out) < n; i-- {
		if msgs[i].Role == RoleUser && strings.TrimSpace(msgs[i].Content) != "" {
			out = append(out, strings.ToValidUTF8(msgs[i].Content, " "))
		}
	}
	return out
}

// contextOf is what a latest turn is read with: the user turn before it and, when the assistant
// answered that turn with a question, the question.
func contextOf(before []model.Message) (prev, question string) {
	if turns := earlierUserTurns(before, 1); len(turns) > 0 {
		prev = turns[0]
	}
	if q := strings.TrimSpace(lastAssistant(before)); strings.HasSuffix(q, "?") {
		question = lastSentence(q)
	}
	return prev, question
}

// lastSentence is the text after the last sentence end or line break before the end of s.
func lastSentence(s string) string {
	body := strings.TrimRight(s, "?")
	if i := strings.LastIndexAny(body, ".!?\n"); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}

// isFollowUp reports whether a turn of words words is read with the turns before it: it is short,
// or it answers the assistant's question.
func isFollowUp(words int, prev, question string) bool {
	return prev != "" && (words <= followUpWords || question != "")
}

// joinTurns is the text a follow-up is classified with.
func joinTurns(prev, question, text string) string {
	return strings.Join(nonEmpty(prev, question, text), "\n")
}

// lastAssistant is the content of the last assistant turn of msgs, "" when there is none after the
// last user turn.
func lastAssistant(msgs []model.Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		switch msgs[i].Role {
		case RoleAssistant:
			return strings.ToValidUTF8(msgs[i].Content, " ")
		case RoleUser:
			return ""
		}
	}
	return ""
}

// screenSystem refuses client system and developer messages when configured to, and any that
// tries to change the assistant's instructions.
func (g *Guard) screenSystem(conv []model.Message) (Verdict, bool) {
	for _, m := range conv {
		if m.Role != RoleSystem && m.Role != RoleDeveloper {
			continue
		}
		locale := g.cfg.locale("en")
		if g.cfg.ClientSystem == ClientSystemReject {
			return Verdict{Kind: OutOfDomain, Code: "client_system", Locale: locale, Score: 1,
				Reason:  "client_system: this server does not accept system or developer messages from clients",
				Message: g.message("en", "client_system")}, true
		}
		d, ms := g.prepare(strings.ToValidUTF8(m.Content, " "))
		if v, ok := g.injection(&d, ms); ok {
			v.Reason = "prompt_injection: client " + m.Role + " message: " + strings.TrimPrefix(v.Reason, "prompt_injection: ")
			return v, true
		}
	}
	return Verdict{}, false
}

// judge decides about one user turn; prev is the user turn before it and question the assistant's
// question in between ("" when there is none). Embeddings are taken from memo when it has them.
func (g *Guard) judge(text, prev, question string, memo map[string][]float32) Verdict {
	d, ms := g.prepare(text)
	lang := d.lang
	locale := g.cfg.locale(lang)
	c := indexCues(&d, ms)
	if e, ok := detectEmergency(&d, ms, c); ok {
		return Verdict{Kind: Emergency, Code: e.category, Reason: e.reason(), Locale: locale, Score: e.score,
			Message: g.emergencyMessage(lang, locale, e.category)}
	}
	if v, ok := g.injection(&d, ms); ok {
		return v
	}
	if key, ok := social(&d); ok {
		return Verdict{Kind: Allow, Code: "social", Locale: locale, Score: 1,
			Reason: "social: a greeting or thanks", Message: g.message(lang, key)}
	}
	texts := []string{text}
	followUp := isFollowUp(len(d.toks), prev, question)
	if followUp {
		texts = append(texts, joinTurns(prev, question, text))
	}
	embs, err := g.embed(texts, memo)
	if err != nil {
		// the encoder failed: answer rather than refuse, and say so
		return Verdict{Kind: Allow, Code: "medical", Locale: locale, Reason: "medical: encoder failed (" + err.Error() + ")"}
	}
	// A follow-up is an emergency only read with the turns before it ("45, and I smoke" answering
	// "how old are you?" is not); its domain is the average of both readings ("and for kids?").
	p := g.head.Probs(texts[0], embs[0])
	if followUp {
		alone, with := p, g.head.Probs(texts[1], embs[1])
		for k := range p {
			p[k] = (alone[k] + with[k]) / 2
		}
		p[classEmergency] = with[classEmergency]
	}
	class := g.head.decide(p)
	ctx := ""
	if followUp {
		ctx = ", read with the turn before it"
	}
	switch class {
	case classEmergency:
		if why, framed := notHappeningNow(&d, c); framed {
			return Verdict{Kind: Allow, Code: "medical", Locale: locale, Score: 1 - p[classEmergency],
				Reason: fmt.Sprintf("medical: emergency score %.2f%s, but %s", p[classEmergency], ctx, why)}
		}
		cat := emergencyCategory(ms)
		return Verdict{Kind: Emergency, Code: cat, Locale: locale, Score: p[classEmergency],
			Reason:  fmt.Sprintf("%s: emergency score %.2f >= %.2f%s", cat, p[classEmergency], g.head.EmergencyThreshold, ctx),
			Message: g.emergencyMessage(lang, locale, cat)}
	case classNonmedical:
		return Verdict{Kind: OutOfDomain, Code: "not_medical", Locale: locale, Score: p[classNonmedical],
			Reason:  fmt.Sprintf("not_medical: off-topic score %.2f >= %.2f%s", offTopic(p), g.head.OffTopicThreshold, ctx),
			Message: g.message(lang, "out_of_domain")}
	}
	return Verdict{Kind: Allow, Code: "medical", Locale: locale, Score: p[classMedical],
		Reason: fmt.Sprintf("medical: off-topic score %.2f < %.2f%s", offTopic(p), g.head.OffTopicThreshold, ctx)}
}

// embed returns the embeddings of texts, from memo when it holds them all.
func (g *Guard) embed(texts []string, memo map[string][]float32) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if out[i] = memo[t]; out[i] == nil {
			return g.emb.Embed(texts)
		}
	}
	return out, nil
}

func nonEmpty(parts ...string) []string {
	var out []string
	for _, p := range parts {
		if strings.TrimSpace(p) != "" {
			out = append(out, p)
		}
	}
	return out
}

// injection reports an instruction attack found by the injection rules.
func (g *Guard) injection(d *doc, ms []match) (Verdict, bool) {
	for _, m := range ms {
		if m.p.section == secInject {
			return Verdict{Kind: OutOfDomain, Code: "prompt_injection", Locale: g.cfg.locale(d.lang), Score: 1,
				Reason:  fmt.Sprintf("prompt_injection: %q asks the assistant to drop its instructions or role", phraseOf(d, m)),
				Message: g.message(d.lang, "prompt_injection")}, true
		}
	}
	return Verdict{}, false
}

// notHappeningNow reports framing that makes emergency words a question about emergencies rather
// than one happening now: fiction, an exam-style case, a question or hypothetical that opens the
// message ("what are the signs of", "if someone", "how do you"), or a remote time ("last year"),
// unless the message also calls for help now.
func notHappeningNow(d *doc, c *cues) (string, bool) {
	if c.message[cueUrgent] {
		return "", false
	}
	switch {
	case c.message[cueFiction]:
		return "it is fiction", true
	case c.message[cueClinical]:
		return "it is an exam-style case", true
	}
	for _, sec := range []string{cueInfo, cueCond} {
		for j, on := range c.starts[sec] {
			if on && j < 3 {
				return "it opens as a question about the topic (" + sec + ")", true
			}
		}
	}
	for s, on := range c.sentence[cueRemote] {
		if on && !c.sentence[cueIntense][s] {
			return "it is in the past (" + cueRemote + ")", true
		}
	}
	return "", false
}

// emergencyCategory is the category of the first emergency-lexicon match, "general" when none.
func emergencyCategory(ms []match) string {
	for _, m := range ms {
		if cat, ok := strings.CutPrefix(m.p.section, secEmerg); ok {
			return cat
		}
	}
	return "general"
}

// socialWords make up greetings and thanks; a turn made only of them (at least one a core word,
// at most 8 words) gets a short reply.
var (
	socialHello  = wordSet(`hi hello hey hiya howdy yo greetings morning evening afternoon hola buenas buenos dias tardes noches bonjour bonsoir salut coucou hallo moin servus ciao buongiorno buonasera ola oi bom dia boa tarde noite`)
	socialThanks = wordSet(`thanks thank thx ty cheers bye goodbye ok okay great cool perfect awesome nice gracias adios vale merci revoir danke tschuss grazie arrivederci obrigado obrigada tchau`)
	socialFill   = wordSet(`you so much very a lot for the that this it helps helped helpful good day night all again and got understood see later have doctor there mate muchas mille beaucoup tres vielen dank schon molte mil muito bien bueno bon gut`)
)

func wordSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

// social reports a greeting or thanks and the key of its reply.
func social(d *doc) (string, bool) {
	if len(d.toks) == 0 || len(d.toks) > 8 {
		return "", false
	}
	hello, thanks := false, false
	for _, t := range d.toks {
		switch {
		case socialHello[t.text]:
			hello = true
		case socialThanks[t.text]:
			thanks = true
		case socialFill[t.text]:
		default:
			return "", false
		}
	}
	switch {
	case thanks:
		return "social.thanks", true
	case hello:
		return "social.hello", true
	}
	return "", false
}

// lastUserTurn is the index of the conversation's latest user message, -1 when it has none.
func lastUserTurn(conv []model.Message) int {
	for i := len(conv) - 1; i >= 0; i-- {
		if conv[i].Role == RoleUser {
			return i
		}
	}
	return -1
}
