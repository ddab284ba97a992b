package store

import "strconv"

// Webhook outbox. The room streams are the outbox: an entry of a kind
// that is delivered to the webhook is recorded, in the same script call
// that stores it, by adding its room to a pending set. On a cluster a
// script may touch only its own hash slot, so there is one pending set per
// slot, keyed with a tag chosen to hash to that slot (slotTags); in
// single mode one set serves every room.

const keyWebhookPending = "chat:whq"

// slotTags[s] is a short string whose hash slot is s.
var slotTags = func() []string {
	tags := make([]string, NumSlots)
	found := 0
	for i := 0; found < NumSlots; i++ {
		t := strconv.FormatInt(int64(i), 36)
		if s := Slot(t); tags[s] == "" {
			tags[s] = t
			found++
		}
	}
	return tags
}()

// webhookKey is the pending set of room's webhook events.
func (s *Store) webhookKey(room string) string {
	if s.cluster == nil {
		return keyWebhookPending
	}
	return "chat:{" + slotTags[Slot(streamKey(room))] + "}:whq"
}
