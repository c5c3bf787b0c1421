package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hookbridge/hookbridge/plugins/sdk"
	"github.com/hookbridge/hookbridge/schemas"
)

// propertiesPath lists the contact object's properties, with their types and options.
const propertiesPath = "/crm/v3/properties/contacts"

// property is one contact property as GET /crm/v3/properties/contacts describes it.
type property struct {
	Name string `json:"name"`
	// Type is string, number, date, datetime, enumeration or bool.
	Type string `json:"type"`
	// FieldType is how HubSpot shows it: text, checkbox (multiple checkboxes), select, …
	FieldType string `json:"fieldType"`
	Options   []struct {
		Label string `json:"label"`
		Value string `json:"value"`
	} `json:"options"`
	ModificationMetadata struct {
		ReadOnlyValue bool `json:"readOnlyValue"`
	} `json:"modificationMetadata"`
}

func (p *property) hasOption(v string) bool {
	return slices.ContainsFunc(p.Options, func(o struct {
		Label string `json:"label"`
		Value string `json:"value"`
	}) bool {
		return o.Value == v
	})
}

// kind is what a mapped column holds, which decides how its value is written.
type kind int

const (
	kindText kind = iota
	kindInstant
	kindWall // a wall-clock time without a zone (event_start, event_end)
	kindList
	kindStatus // status or contact_status: written as the contact's status
)

func columnKind(col string) kind {
	if col == "status" || col == "contact_status" {
		return kindStatus
	}
	c, ok := schemas.LookupColumn(col)
	if !ok {
		return kindText
	}
	switch t := c.Type.(type) {
	case *arrow.TimestampType:
		if t.TimeZone == "" {
			return kindWall
		}
		return kindInstant
	case *arrow.ListType:
		return kindList
	}
	return kindText
}

// format renders one mapped value as HubSpot takes property values: all strings. Instants
// go to datetime properties as ISO 8601 in UTC with milliseconds, and to date properties
// as the UTC day (YYYY-MM-DD; HubSpot wants dates at midnight UTC). Lists become a
// multiple-checkbox value, ';'-separated; an empty list clears the property. Booleans are
// true/false, and numbers are decimal. p is nil when the property's type is unknown.
func format(v any, k kind, p *property) string {
	switch x := v.(type) {
	case string:
		if k == kindInstant || k == kindWall {
			if t, ok := parseMapped(x, k); ok {
				return formatTime(t, k, p)
			}
		}
		return x
	case []string:
		return strings.Join(x, ";")
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case time.Time:
		return formatTime(x, k, p)
	case []byte:
		return string(x)
	}
	return fmt.Sprint(v)
}

// parseMapped reads back a time as Batch.Fields renders it (schemas.Mapping.Apply).
func parseMapped(s string, k kind) (time.Time, bool) {
	layout := time.RFC3339Nano
	if k == kindWall {
		layout = "2006-01-02T15:04:05.999999"
	}
	t, err := time.Parse(layout, s)
	return t, err == nil
}

func formatTime(t time.Time, k kind, p *property) string {
	if k == kindInstant {
		t = t.UTC()
	}
	switch {
	case p != nil && p.Type == "date":
		return t.Format(time.DateOnly)
	case k == kindWall && (p == nil || p.Type != "datetime"):
		// A wall-clock time names no instant: text keeps it as the calendar shows it.
		return t.Format("2006-01-02T15:04:05")
	}
	// A wall-clock time written to a datetime property is read as UTC; map event_start_utc
	// instead to write the instant.
	return t.Format("2006-01-02T15:04:05.000Z")
}

// schemaError is an answer other than 200 to the properties request.
type schemaError struct {
	status   int
	category string
	message  string
}

func (e *schemaError) Error() string {
	return fmt.Sprintf("reading contact properties: %d %s: %s", e.status, e.category, e.message)
}

// readSchema fetches the contact properties by name. A refused request returns a
// *schemaError, or the rate-limit errors send returns.
func (s *Sink) readSchema(ctx context.Context) (map[string]*property, error) {
	a, err := s.send(ctx, http.MethodGet, propertiesPath, nil)
	if err != nil {
		return nil, err
	}
	if a.status == http.StatusTooManyRequests {
		return nil, s.throttled(a)
	}
	if a.status != http.StatusOK {
		e := a.hubspotError()
		return nil, &schemaError{status: a.status, category: e.Category, message: truncate(e.Message, 300)}
	}
	var list struct {
		Results []*property `json:"results"`
	}
	if err := json.Unmarshal(a.body, &list); err != nil {
		return nil, fmt.Errorf("reading contact properties: %w", err)
	}
	props := make(map[string]*property, len(list.Results))
	for _, p := range list.Results {
		props[p.Name] = p
	}
	return props, nil
}

// schemaProblems names what the mapping needs and HubSpot's contact object lacks: mapped
// properties that do not exist or are read-only, and status values that are not options
// of an enumeration status property.
func (s *Sink) schemaProblems(props map[string]*property) []string {
	var missing, readOnly, problems []string
	for _, f := range s.fields() {
		p, ok := props[f]
		switch {
		case !ok:
			missing = append(missing, f)
		case p.ModificationMetadata.ReadOnlyValue:
			readOnly = append(readOnly, f)
		}
	}
	sort.Strings(missing)
	sort.Strings(readOnly)
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("mapped properties missing on contacts: %s (create them in HubSpot first)", strings.Join(missing, ", ")))
	}
	if len(readOnly) > 0 {
		problems = append(problems, fmt.Sprintf("mapped properties are read-only in HubSpot: %s", strings.Join(readOnly, ", ")))
	}
	for _, f := range s.statusProps {
		p := props[f]
		if p == nil || p.Type != "enumeration" {
			continue
		}
		var absent []string
		for _, v := range []string{s.subscribed, s.unsubscribed} {
			if !p.hasOption(v) {
				absent = append(absent, strconv.Quote(v))
			}
		}
		if len(absent) > 0 {
			var have []string
			for _, o := range p.Options {
				have = append(have, strconv.Quote(o.Value))
			}
			problems = append(problems, fmt.Sprintf("status property %s has no option %s (its options: %s): add them in HubSpot or set status_values to its option values",
				f, strings.Join(absent, ", "), strings.Join(have, ", ")))
		}
	}
	return problems
}

// ensureSchema reads the contact properties once per process, before the first upsert, so
// that values are formatted for their property types. The properties must exist first: if
// any is missing, the sink pauses until an operator has created it and resumes the sink
// (the schema is read again then). A token without the schema-read scope still delivers,
// with values formatted without type knowledge (instants as datetimes).
func (s *Sink) ensureSchema(ctx context.Context) error {
	if s.schema != nil || s.schemaUnreadable {
		return nil
	}
	props, err := s.readSchema(ctx)
	var se *schemaError
	switch {
	case errors.As(err, &se) && se.status == http.StatusForbidden:
		s.schemaUnreadable = true
		s.log.Warn("hubspot: the token may not read contact properties (scope crm.schemas.contacts.read); values are sent without knowing the property types",
			"sink", s.cfg.Name, "status", se.status, "category", se.category)
		return nil
	case errors.As(err, &se) && se.status == http.StatusUnauthorized:
		return sdk.SinkDown(fmt.Errorf("hubspot: HubSpot refused the token (401 %s): check the token", se.category), 0, se.status)
	case err != nil:
		if _, ok := sdk.AsSinkDown(err); ok {
			return err
		}
		status := 0
		if se != nil {
			status = se.status
		}
		// No row was sent: back off without charging them.
		return sdk.SinkDown(fmt.Errorf("hubspot: %w", err), 0, status)
	}
	if problems := s.schemaProblems(props); len(problems) > 0 {
		return sdk.Pause(fmt.Errorf("hubspot: %s; then resume the sink", strings.Join(problems, "; ")), 0)
	}
	s.schema = props
	return nil
}

// Check implements sdk.Checker. The properties request is the authenticated request that
// verifies the token; its answer says whether every mapped property exists on the contact
// object, and whether the status property takes the status values.
func (s *Sink) Check(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	props, err := s.readSchema(ctx)
	var se *schemaError
	switch {
	case errors.As(err, &se) && se.status == http.StatusUnauthorized:
		return fmt.Errorf("hubspot: check: HubSpot refused the token (401 %s): create a private app token and set it in settings.token", se.category)
	case errors.As(err, &se) && se.status == http.StatusForbidden:
		return fmt.Errorf("hubspot: check: the token lacks a scope (403 %s: %s): grant crm.objects.contacts.write and crm.schemas.contacts.read", se.category, se.message)
	case err != nil:
		return fmt.Errorf("hubspot: check: %w", err)
	}
	if problems := s.schemaProblems(props); len(problems) > 0 {
		return fmt.Errorf("hubspot: check: %s", strings.Join(problems, "; "))
	}
	s.schema = props
	return nil
}
