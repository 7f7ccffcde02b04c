using System;
using System.Collections.Generic;
using System.Text;
using InitramfsPS.Errors;

namespace InitramfsPS.RootFilesystem
{
    /// <summary>
    /// Normalises paths inside a rootfs. Every path is absolute, '/'-separated, with no '.', '..',
    /// empty or trailing components, so <c>./a</c>, <c>a/</c> and <c>a//b</c> are one path.
    /// The normalisation is lexical: symlinks are data and are never followed.
    /// </summary>
    public static class RootfsPath
    {
        /// <summary>PATH_MAX on Linux, counting the terminating NUL.</summary>
        public const int PathMax = 4096;

        /// <summary>Whether a name or link target of <paramref name="utf8Bytes"/> bytes fits: the kernel drops those of PATH_MAX or more with their NUL.</summary>
        public static bool FitsPathMax(int utf8Bytes) => utf8Bytes + 1 <= PathMax;

        /// <summary>The largest file a newc archive can hold: its size field is 32 bits.</summary>
        public const long MaxArchiveFileSize = uint.MaxValue;

        /// <summary>The root path.</summary>
        public const string Root = "/";

        /// <summary>
        /// Normalises <paramref name="raw"/>. A leading '/' is confined to the root (the path is read
        /// relative to it); a '..' that would climb above the root, a NUL byte or an empty name throws.
        /// </summary>
        public static string Normalize(string raw, string errorIdPrefix = "Path")
        {
            if (!TryNormalize(raw, out string path, out string? problem))
            {
                throw new InitramfsException(errorIdPrefix + (problem == "climbs" ? "OutsideRoot" : "Invalid"),
                    problem == "climbs" ? FailureKind.Security : FailureKind.InvalidData,
                    problem == "climbs"
                        ? $"The path '{Printable(raw)}' climbs above the root of the rootfs."
                        : $"The path '{Printable(raw)}' is not a valid path ({problem}).",
                    raw);
            }
            return path;
        }

        /// <summary>Normalises without throwing; <paramref name="problem"/> is "climbs", "empty" or "contains NUL".</summary>
        public static bool TryNormalize(string raw, out string path, out string? problem)
        {
            path = Root;
            problem = null;
            if (raw is null || raw.Length == 0)
            {
                problem = "empty";
                return false;
            }
            if (raw.Contains('\0', StringComparison.Ordinal))
            {
                problem = "contains NUL";
                return false;
            }
            var parts = new List<string>();
            foreach (string part in raw.Split('/'))
            {
                if (part.Length == 0 || part == ".")
                {
                    continue;
                }
                if (part == "..")
                {
                    if (parts.Count == 0)
                    {
                        problem = "climbs";
                        return false;
                    }
                    parts.RemoveAt(parts.Count - 1);
                    continue;
                }
                parts.Add(part);
            }
            path = parts.Count == 0 ? Root : "/" + string.Join('/', parts);
            return true;
        }

        /// <summary>
        /// Normalises a path whose '..' at the root stays at the root, as inside a chroot or the
        /// kernel's unpacking: for symlink targets and archive names, never for layer entries
        /// (where climbing is refused, see <see cref="Normalize"/>).
        /// </summary>
        public static string Confine(string path)
        {
            var parts = new List<string>();
            foreach (string part in path.Split('/'))
            {
                if (part.Length == 0 || part == ".")
                {
                    continue;
                }
                if (part == "..")
                {
                    if (parts.Count > 0)
                    {
                        parts.RemoveAt(parts.Count - 1);
                    }
                    continue;
                }
                parts.Add(part);
            }
            return parts.Count == 0 ? Root : "/" + string.Join('/', parts);
        }

        /// <summary>The parent of a normalised path ("/" for top-level names and for the root).</summary>
        public static string Parent(string path)
        {
            int slash = path.LastIndexOf('/');
            return slash <= 0 ? Root : path[..slash];
        }

        /// <summary>The last component of a normalised path ("" for the root).</summary>
        public static string Name(string path) => path == Root ? string.Empty : path[(path.LastIndexOf('/') + 1)..];

        /// <summary>Joins a normalised directory path and a single name.</summary>
        public static string Combine(string directory, string name) => directory == Root ? "/" + name : directory + "/" + name;

        /// <summary>The components of a normalised path.</summary>
        public static string[] Split(string path) => path == Root ? Array.Empty<string>() : path[1..].Split('/');

        /// <summary>
        /// Orders normalised paths as <see cref="Rootfs.GetEntries"/> lists them: component by
        /// component, each by its UTF-8 bytes, so a directory comes before everything below it.
        /// </summary>
        public static int CompareArchiveOrder(string a, string b) =>
            // Component by component is code point by code point with '/' below every other
            // character: no splitting, and the cost is the common prefix.
            Utf8Order.Compare(a, b, separatorFirst: true);

        /// <summary>The name as written into a cpio archive: relative, '.' for the root.</summary>
        public static string ArchiveName(string path) => path == Root ? "." : path[1..];

        /// <summary>
        /// Escapes control characters so a hostile name cannot rewrite the terminal: <see cref="IO.Printable.Of"/>,
        /// under the name the folders above the rootfs call it by.
        /// </summary>
        public static string Printable(string? s) => IO.Printable.Of(s);
    }
}
