package schemas

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryColumnAndFlag keeps the README's tables in step with the code.
func TestREADMEDocumentsEveryColumnAndFlag(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, c := range Columns() {
		if !strings.Contains(readme, "| `"+c.Name+"` |") {
			t.Errorf("README lacks a table row for column %s", c.Name)
		}
	}
	for _, f := range FlagNames() {
		if !strings.Contains(readme, "| `"+f+"` |") {
			t.Errorf("README lacks a table row for flag %s", f)
		}
	}
	for _, r := range []Rule{RuleEmptyBody, RuleNotJSON, RuleTruncated, RuleNotEnvelope, RuleMissingEventID, RuleInvalidEventID,
		RuleMissingEventType, RuleInvalidEventType, RuleMissingEventDetails, RuleInvalidEventDetails} {
		if !strings.Contains(readme, "`"+string(r)+"`") {
			t.Errorf("README does not name rule %s", r)
		}
	}
}
