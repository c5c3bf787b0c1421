package schemas

import (
	"slices"
	"testing"
)

func TestKeyPaths(t *testing.T) {
	got, err := KeyPaths(readBody(t, "unknown_keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"eventId", "deliveryAttempt", "eventDetails.subscription.subscriberEmail", "eventDetails.subscription.calendarTags", "eventDetails.subscription.calendarTags[].tagId", "eventDetails.subscription.calendarTags[].name"} {
		if !slices.Contains(got, want) {
			t.Errorf("paths lack %s: %v", want, got)
		}
	}
	if _, err := KeyPaths(readBody(t, "vendor_basic_trailing_comma.json")); err != nil {
		t.Errorf("trailing commas: %v", err)
	}
	if _, err := KeyPaths([]byte("nope")); err == nil {
		t.Error("not JSON accepted")
	}
	for path, want := range map[string]bool{
		"eventId": true, "deliveryAttempt": false, "eventDetails.accountCode": true, "eventDetails.subscription.calendarTitle": true,
		"eventDetails.subscription.subscriberEmail": false, "eventDetails.subscription.calendarTags[].tagId": true,
		"eventDetails.subscription.calendarTags[].name": false, "eventDetails.subscriptionEvent.title": true,
	} {
		if Documented(path) != want {
			t.Errorf("Documented(%s) = %v", path, !want)
		}
	}
}
