package store

// Redis Cluster hash slots: CRC16/XMODEM of the key, or of the part
// between the first '{' and the next '}' when that part is not empty,
// modulo 16384 (the Redis Cluster specification, "Keys distribution
// model").

// NumSlots is the number of hash slots of a Redis Cluster.
const NumSlots = 16384

var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc16(s string) uint16 {
	var c uint16
	for i := 0; i < len(s); i++ {
		c = c<<8 ^ crcTable[byte(c>>8)^s[i]]
	}
	return c
}

// Slot returns the hash slot of key, as Redis Cluster computes it.
func Slot(key string) int {
	for i := 0; i < len(key); i++ {
		if key[i] == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j > i+1 {
						key = key[i+1 : j]
					}
					break
				}
			}
			break
		}
	}
	return int(crc16(key) % NumSlots)
}
