package fs

// Part layout of a staged file. Part i (0-based; S3 part number i+1) covers a fixed byte range, so
// a write maps to its parts without bookkeeping. Parts grow so that 10,000 of them reach 5 TiB:
// each tier of partsPerTier parts doubles the size of the one before (8 MiB parts: 1,000 × 8 MiB,
// 1,000 × 16 MiB, ..., enough for 8 TiB).
//
// A variable only so that tests reach the larger parts with little data.
var partsPerTier = 1000

// partRange returns the offset and size of part i for base part size p.
func partRange(i int, p int64) (off, size int64) {
	tier := i / partsPerTier
	size = p << tier
	// Tiers before this one hold partsPerTier × p × (2^tier - 1) bytes.
	off = int64(partsPerTier)*p*((1<<tier)-1) + int64(i%partsPerTier)*size
	return off, size
}

// partIndex returns the part that holds byte offset off.
func partIndex(off, p int64) int {
	tier := 0
	for {
		tierBytes := int64(partsPerTier) * (p << tier)
		if off < tierBytes {
			return tier*partsPerTier + int(off/(p<<tier))
		}
		off -= tierBytes
		tier++
	}
}

// partCount returns how many parts a file of size bytes has (at least 1, for the empty object).
func partCount(size, p int64) int {
	if size == 0 {
		return 1
	}
	return partIndex(size-1, p) + 1
}
