package pipeline

import (
	"strconv"
	"strings"

	"github.com/espnode/espnode/seg/channel"
	"github.com/espnode/espnode/store"
)

// Route is one routing rule: an instance matching every non-empty list goes to Channel, a
// seg/channel name or channel.None (stored, not segmented, counted under Reason).
//
// Modality, SOPClassUID and CallingAE match a value equal to the instance's, ignoring case and
// padding; ImageType matches when one of the instance's Image Type values is listed. The
// anatomy lists match by words: values and the instance's text are compared in upper case with
// every run of characters other than letters and digits taken as one space, and a listed value
// matches when its words appear together, in order, in the instance's ("CHEST" matches
// "CHEST_PA", "PA CHEST" and "Chest PA", not "CHESTABDOMEN"). In every list "" matches an
// instance that has no value there.
type Route struct {
	Channel     string
	Modality    []string
	SOPClassUID []string
	// BodyPartExamined is matched by words against Body Part Examined (0018,0015).
	BodyPartExamined []string
	// AnatomicRegion lists codes "SCHEME:VALUE" (SCT:51185008); it matches when one item of the
	// Anatomic Region Sequence (0008,2218) is listed.
	AnatomicRegion []string
	// ViewPosition is matched by words against View Position (0018,5101).
	ViewPosition []string
	// Description is matched by words against Study Description, Series Description, Protocol
	// Name and View Position (some devices write the projection's anatomy there): one of them
	// holding a listed value matches; "" matches when all are empty.
	Description []string
	// ImageType matches when one of the instance's Image Type values is listed.
	ImageType []string
	CallingAE []string
	// Reason names why a channel-none rule stores without segmenting (the label of
	// espnode_instances_not_segmented_total); empty gives "rule_N", N the rule's index.
	Reason string
}

// ReasonNoRule is the not-segmented reason of an instance no rule matches.
const ReasonNoRule = "no_rule"

// Router maps a stored instance to a channel by ordered rules; the first
// matching rule wins.
type Router struct {
	rules []Route
}

// NewRouter returns a router over rules (Config.Routing).
func NewRouter(rules []Route) *Router { return &Router{rules: rules} }

// Route returns the channel of the first rule inst matches, and the rule's
// index; ok is false when no rule matches or the rule says "none".
func (r *Router) Route(inst store.Instance) (ch string, rule int, ok bool) {
	d := r.Decide(inst)
	return d.Channel, d.Rule, d.Channel != ""
}

// Decision is where routing sent an instance.
type Decision struct {
	// Channel is empty when the instance is not segmented.
	Channel string
	// Rule is the index of the matching rule, -1 when none matched.
	Rule int
	// Reason says why an instance is not segmented: the rule's Reason, or ReasonNoRule.
	Reason string
}

// Decide routes an instance, with the reason when it is not segmented.
func (r *Router) Decide(inst store.Instance) Decision {
	for i, rule := range r.rules {
		if !matches(rule, inst) {
			continue
		}
		if rule.Channel == channel.None {
			reason := rule.Reason
			if reason == "" {
				reason = "rule_" + strconv.Itoa(i)
			}
			return Decision{Rule: i, Reason: reason}
		}
		return Decision{Channel: rule.Channel, Rule: i}
	}
	return Decision{Rule: -1, Reason: ReasonNoRule}
}

func matches(rule Route, inst store.Instance) bool {
	return oneOf(rule.Modality, inst.Modality) &&
		oneOf(rule.SOPClassUID, inst.SOPClassUID) &&
		oneOf(rule.CallingAE, inst.CallingAE) &&
		anyOf(rule.ImageType, strings.Split(inst.ImageType, `\`)) &&
		wordsIn(rule.BodyPartExamined, inst.BodyPartExamined) &&
		wordsIn(rule.ViewPosition, inst.ViewPosition) &&
		wordsIn(rule.Description, inst.StudyDescription, inst.SeriesDescription, inst.ProtocolName, inst.ViewPosition) &&
		codeIn(rule.AnatomicRegion, splitCodes(inst.AnatomicRegion))
}

// oneOf reports whether v is one of values; an empty list matches anything.
func oneOf(values []string, v string) bool {
	if len(values) == 0 {
		return true
	}
	v = strings.TrimSpace(v)
	for _, w := range values {
		if strings.EqualFold(strings.TrimSpace(w), v) {
			return true
		}
	}
	return false
}

// anyOf reports whether one of vs is one of values (Image Type is
// multi-valued: ORIGINAL\PRIMARY matches a rule asking for PRIMARY).
func anyOf(values, vs []string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range vs {
		if v != "" && oneOf(values, v) {
			return true
		}
	}
	return false
}

// wordsIn reports whether one of values appears, as words, in one of texts; "" matches when
// every text is empty. An empty list matches anything.
func wordsIn(values []string, texts ...string) bool {
	if len(values) == 0 {
		return true
	}
	words := make([][]string, len(texts))
	empty := true
	for i, t := range texts {
		words[i] = Words(t)
		empty = empty && len(words[i]) == 0
	}
	for _, v := range values {
		want := Words(v)
		if len(want) == 0 {
			if empty {
				return true
			}
			continue
		}
		for _, have := range words {
			if contains(have, want) {
				return true
			}
		}
	}
	return false
}

// Words splits text as the anatomy lists compare it: upper case, letters and digits, every
// other run of characters a separator ("Chest_PA " is CHEST, PA).
func Words(text string) []string {
	return strings.FieldsFunc(strings.ToUpper(text), func(r rune) bool {
		return !('A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	})
}

// contains reports whether want appears in have as consecutive words.
func contains(have, want []string) bool {
	for i := 0; i+len(want) <= len(have); i++ {
		match := true
		for j, w := range want {
			if have[i+j] != w {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// codeIn reports whether one of the instance's codes ("SCHEME:VALUE") is listed, ignoring case
// and spaces around either part; "" matches an instance without codes.
func codeIn(values, codes []string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		v = normCode(v)
		if v == "" && len(codes) == 0 {
			return true
		}
		for _, c := range codes {
			if v != "" && normCode(c) == v {
				return true
			}
		}
	}
	return false
}

func normCode(c string) string {
	scheme, value, _ := strings.Cut(c, ":")
	scheme, value = strings.ToUpper(strings.TrimSpace(scheme)), strings.ToUpper(strings.TrimSpace(value))
	if scheme == "" && value == "" {
		return ""
	}
	return scheme + ":" + value
}

// splitCodes splits store.Instance.AnatomicRegion into its codes.
func splitCodes(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return strings.Split(s, `\`)
}
