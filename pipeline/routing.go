package pipeline

import (
	"strings"

	"github.com/espnode/espnode/seg/channel"
	"github.com/espnode/espnode/store"
)

// Route is one routing rule: an instance matching every non-empty list (a
// list matches when one of its values does, ignoring case and padding) goes
// to Channel, a seg/channel name or channel.None (stored, not segmented).
type Route struct {
	Channel          string
	Modality         []string
	SOPClassUID      []string
	BodyPartExamined []string
	// ImageType matches when one of the instance's Image Type values is listed.
	ImageType []string
	CallingAE []string
}

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
	for i, rule := range r.rules {
		if matches(rule, inst) {
			if rule.Channel == channel.None {
				return "", i, false
			}
			return rule.Channel, i, true
		}
	}
	return "", -1, false
}

func matches(rule Route, inst store.Instance) bool {
	return oneOf(rule.Modality, inst.Modality) &&
		oneOf(rule.SOPClassUID, inst.SOPClassUID) &&
		oneOf(rule.BodyPartExamined, inst.BodyPartExamined) &&
		oneOf(rule.CallingAE, inst.CallingAE) &&
		anyOf(rule.ImageType, strings.Split(inst.ImageType, `\`))
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
