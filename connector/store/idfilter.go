package store

import (
	"context"
	"database/sql"
	"hash/maphash"
	"math/bits"
)

// idFilter is a scalable Bloom filter over stored event ids. It answers "certainly new" for
// almost every fresh id, so the writer looks up only the few ids that may be duplicates
// instead of probing the index for every event. It never forgets an id, so it can never
// let a duplicate through; a false "maybe" only costs one index lookup.
type idFilter struct {
	seed   maphash.Seed
	layers []*bloomLayer
}

// bloomLayer holds up to capacity ids at about 1% false positives (10 bits and 7 probes per
// id). A new layer twice as large is added when the last one fills up.
type bloomLayer struct {
	bits     []uint64
	mask     uint64
	n        int
	capacity int
}

const bloomProbes = 7

func newIDFilter(expected int) *idFilter {
	f := &idFilter{seed: maphash.MakeSeed()}
	f.grow(max(expected*2, 1<<16))
	return f
}

func (f *idFilter) grow(capacity int) {
	nbits := uint64(capacity) * 10
	size := uint64(1) << bits.Len64(nbits-1) // a power of two, so probes mask instead of divide
	f.layers = append(f.layers, &bloomLayer{bits: make([]uint64, size/64), mask: size - 1, capacity: capacity})
}

func (f *idFilter) hashes(id string) (uint64, uint64) {
	h := maphash.String(f.seed, id)
	return h, (h >> 32) | (h << 32) | 1
}

func (f *idFilter) add(id string) {
	last := f.layers[len(f.layers)-1]
	if last.n >= last.capacity {
		f.grow(last.capacity * 2)
		last = f.layers[len(f.layers)-1]
	}
	h1, h2 := f.hashes(id)
	for i := uint64(0); i < bloomProbes; i++ {
		bit := (h1 + i*h2) & last.mask
		last.bits[bit/64] |= 1 << (bit % 64)
	}
	last.n++
}

func (f *idFilter) mayContain(id string) bool {
	h1, h2 := f.hashes(id)
	for _, l := range f.layers {
		hit := true
		for i := uint64(0); i < bloomProbes && hit; i++ {
			bit := (h1 + i*h2) & l.mask
			hit = l.bits[bit/64]&(1<<(bit%64)) != 0
		}
		if hit {
			return true
		}
	}
	return false
}

// loadIDFilter reads every id query returns (one string column) into a filter sized for n.
func loadIDFilter(ctx context.Context, db *sql.DB, n int, query string) (*idFilter, error) {
	f := newIDFilter(n)
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		f.add(id)
	}
	return f, rows.Err()
}
