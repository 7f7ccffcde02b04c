using System.Globalization;
using System.Text;

namespace InitramfsPS.IO
{
    /// <summary>
    /// Text from an image, an archive or a user, made safe to put in a message. It lives here, below
    /// every folder that reports names (references, digests, paths, tags), so that none of them has
    /// to reach into another's folder for it.
    /// </summary>
    internal static class Printable
    {
        /// <summary>Escapes control characters so a hostile name cannot rewrite the terminal; at most 300 characters.</summary>
        public static string Of(string? s)
        {
            if (s is null)
            {
                return string.Empty;
            }
            var sb = new StringBuilder(s.Length);
            foreach (char c in s)
            {
                if (char.IsControl(c))
                {
                    sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                }
                else
                {
                    sb.Append(c);
                }
            }
            return sb.Length > 300 ? sb.ToString(0, 300) + "…" : sb.ToString();
        }
    }
}
