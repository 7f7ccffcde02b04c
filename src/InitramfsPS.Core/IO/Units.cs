using System;
using System.Globalization;

namespace InitramfsPS.IO
{
    /// <summary>Formats sizes for people.</summary>
    public static class Units
    {
        private static readonly string[] ByteUnits = { "B", "KB", "MB", "GB", "TB", "PB", "EB" };

        /// <summary>
        /// Bytes as B, KB, MB, GB, ... (powers of 1000, as container tools print them), one decimal
        /// at most. A value that rounds to 1000 takes the next unit (<c>1 MB</c>, not <c>1000 KB</c>),
        /// so no result is longer than 8 characters (<c>999.9 MB</c>): the width of a size column.
        /// </summary>
        public static string Bytes(long bytes)
        {
            if (bytes < 1000)
            {
                return string.Create(CultureInfo.InvariantCulture, $"{bytes} B");
            }
            double value = bytes;
            int unit = 0;
            while (unit < ByteUnits.Length - 1 && Math.Round(value, 1, MidpointRounding.AwayFromZero) >= 1000)
            {
                value /= 1000;
                unit++;
            }
            return string.Create(CultureInfo.InvariantCulture, $"{Math.Round(value, 1, MidpointRounding.AwayFromZero):0.#} {ByteUnits[unit]}");
        }

        /// <summary>
        /// Two sizes for a "before -> after" line: rounded, or in exact bytes where the rounded
        /// values are the same (<c>1234567 B</c> and <c>1234569 B</c>, not <c>1.2 MB</c> twice).
        /// </summary>
        public static (string Reference, string Difference) BytesPair(long reference, long difference)
        {
            string a = Bytes(reference);
            string b = Bytes(difference);
            return a == b && reference != difference
                ? (string.Create(CultureInfo.InvariantCulture, $"{reference} B"), string.Create(CultureInfo.InvariantCulture, $"{difference} B"))
                : (a, b);
        }
    }
}
