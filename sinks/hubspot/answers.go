package hubspot

import (
	"encoding/json"
	"fmt"
	"strings"
)

// hubspotError is HubSpot's error shape, for a whole request or for one input of a batch
// (errors[] of a 207). HubSpot says to treat every field as optional.
type hubspotError struct {
	Status   string `json:"status"`
	Category string `json:"category"`
	Message  string `json:"message"`
	// Context names what the error is about: objectWriteTraceId or ids for batch inputs,
	// propertyName for properties. Values are lists of strings.
	Context map[string]any `json:"context"`
	Errors  []struct {
		Message string `json:"message"`
		Code    string `json:"code"`
		In      string `json:"in"`
	} `json:"errors"`
	// PolicyName and ErrorType are set on 429 answers.
	PolicyName    string `json:"policyName"`
	ErrorType     string `json:"errorType"`
	CorrelationID string `json:"correlationId"`
}

// hubspotError decodes the answer's body as HubSpot's error shape; a body that is not one
// gives its first bytes as the message.
func (a *answer) hubspotError() *hubspotError {
	e := &hubspotError{}
	if err := json.Unmarshal(a.body, e); err != nil || (e.Message == "" && e.Category == "") {
		e.Message = strings.TrimSpace(truncate(string(a.body), 200))
	}
	return e
}

// detail is one entry of the property validation list HubSpot embeds in messages such as
// `Property values were not valid: [{"isValid":false,"message":"Email address x is
// invalid","error":"INVALID_EMAIL","name":"email"}]`.
type detail struct {
	Message string `json:"message"`
	Error   string `json:"error"`
	Name    string `json:"name"`
}

// details returns the embedded validation entries and the codes of errors[].
func (e *hubspotError) details() []detail {
	var out []detail
	if i := strings.Index(e.Message, "["); i >= 0 {
		var list []detail
		if json.Unmarshal([]byte(e.Message[i:]), &list) == nil {
			out = append(out, list...)
		}
	}
	for _, d := range e.Errors {
		if d.Code != "" {
			out = append(out, detail{Message: d.Message, Error: d.Code, Name: d.In})
		}
	}
	return out
}

// permanent says whether sending the same input again cannot succeed: HubSpot refused its
// values (VALIDATION_ERROR, INVALID_EMAIL, INVALID_OPTION, …). Anything else (conflicts,
// internal errors) is worth another try.
func (e *hubspotError) permanent() bool {
	if e.Category == "VALIDATION_ERROR" || strings.HasPrefix(e.Category, "INVALID_") {
		return true
	}
	for _, d := range e.details() {
		if strings.HasPrefix(d.Error, "INVALID_") {
			return true
		}
	}
	return false
}

// reason is the row's reason: HubSpot's category and message, as HubSpot wrote them.
func (e *hubspotError) reason(status int) string {
	what := e.Category
	if what == "" {
		what = fmt.Sprint(status)
	}
	return fmt.Sprintf("HubSpot %s: %s", what, truncate(e.Message, 1000))
}

// contextStrings returns the strings listed under key in the error's context.
func (e *hubspotError) contextStrings(key string) []string {
	switch v := e.Context[key].(type) {
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return []string{v}
	}
	return nil
}

// split divides cs into the inputs the error names (by objectWriteTraceId or by email in
// ids) and the others, in order.
func (e *hubspotError) split(cs []*contact) (named, rest []*contact) {
	traces := map[string]bool{}
	for _, t := range e.contextStrings("objectWriteTraceId") {
		traces[t] = true
	}
	ids := map[string]bool{}
	for _, id := range e.contextStrings("ids") {
		ids[strings.ToLower(id)] = true
	}
	for _, c := range cs {
		if traces[c.trace] || ids[strings.ToLower(c.email)] {
			named = append(named, c)
		} else {
			rest = append(rest, c)
		}
	}
	return named, rest
}
