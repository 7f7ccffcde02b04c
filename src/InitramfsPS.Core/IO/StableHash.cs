using System;

namespace InitramfsPS.IO
{
    /// <summary>
    /// A 64-bit hash of bytes that is the same on every machine and in every run (unlike
    /// <see cref="string.GetHashCode()"/>): FNV-1a, then the SplitMix64 finaliser so that every
    /// output bit depends on every input byte. Not a defence against chosen inputs: what uses it
    /// must stay correct when two names hash alike (inode numbers probe, part cuts only move).
    /// </summary>
    internal static class StableHash
    {
        /// <summary>The hash of <paramref name="data"/> under <paramref name="salt"/> (one use, one salt: the uses stay independent).</summary>
        public static ulong Of(ReadOnlySpan<byte> data, ulong salt)
        {
            ulong h = 14695981039346656037UL ^ (salt * 0x9E3779B97F4A7C15UL);
            foreach (byte b in data)
            {
                h = (h ^ b) * 1099511628211UL;
            }
            h ^= (ulong)data.Length;
            h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9UL;
            h = (h ^ (h >> 27)) * 0x94D049BB133111EBUL;
            return h ^ (h >> 31);
        }

        /// <summary>The hash as a number in [0, 1), from its top 53 bits.</summary>
        public static double Fraction(ulong hash) => (hash >> 11) * (1.0 / (1UL << 53));
    }
}
