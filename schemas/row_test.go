package schemas

import "testing"

func TestContactState(t *testing.T) {
	zero, two := int64(0), int64(2)
	for _, c := range []struct {
		name string
		row  Row
		want string
	}{
		{"contact_status wins", Row{ContactStatus: StatusUnsubscribed, ContactActiveSubscriptions: &two}, StatusUnsubscribed},
		{"active subscriptions left", Row{ContactActiveSubscriptions: &two}, StatusSubscribed},
		{"none left", Row{ContactActiveSubscriptions: &zero}, StatusUnsubscribed},
		{"no contact columns", Row{Status: StatusSubscribed, EventType: "Subscribe"}, ""},
	} {
		if got := c.row.ContactState(); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
