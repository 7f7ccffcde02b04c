using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;

namespace InitramfsPS.Cache
{
    /// <summary>
    /// Where the parts of the imports area came from: each part's marker holds one line per archive
    /// it was read from (<c>mtime-ticks TAB length TAB path</c>), so Get-OciCache can say which
    /// archive uses a part, and a part whose archives are all gone or changed counts as unused.
    /// </summary>
    internal static class ImportOrigins
    {
        private const int MaxOrigins = 16;

        /// <summary>Records that the part with marker <paramref name="markerPath"/> was read from <paramref name="archive"/>.</summary>
        public static void Record(string markerPath, string archive)
        {
            try
            {
                var info = new FileInfo(archive);
                string line = string.Create(CultureInfo.InvariantCulture, $"{info.LastWriteTimeUtc.Ticks}\t{info.Length}\t{info.FullName}");
                var lines = ReadLines(markerPath);
                if (lines.Contains(line))
                {
                    return;
                }
                lines.RemoveAll(l => l.EndsWith("\t" + info.FullName, StringComparison.Ordinal));
                lines.Insert(0, line);
                if (lines.Count > MaxOrigins)
                {
                    lines.RemoveRange(MaxOrigins, lines.Count - MaxOrigins);
                }
                Directory.CreateDirectory(System.IO.Path.GetDirectoryName(markerPath)!);
                string temp = markerPath + "." + Guid.NewGuid().ToString("N") + ".partial";
                File.WriteAllText(temp, string.Join("\n", lines) + "\n", Encoding.UTF8);
                File.Move(temp, markerPath, overwrite: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Without a record the part only looks unused: -Unused may remove it early.
            }
        }

        /// <summary>The archives a part was read from that still exist unchanged.</summary>
        public static IReadOnlyList<string> Live(string markerPath)
        {
            var live = new List<string>();
            foreach (string line in ReadLines(markerPath))
            {
                string[] fields = line.Split('\t', 3);
                if (fields.Length == 3 && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out long ticks)
                    && long.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out long length))
                {
                    var info = new FileInfo(fields[2]);
                    if (info.Exists && info.Length == length && info.LastWriteTimeUtc.Ticks == ticks)
                    {
                        live.Add(fields[2]);
                    }
                }
            }
            return live;
        }

        private static List<string> ReadLines(string markerPath)
        {
            try
            {
                return File.ReadAllLines(markerPath, Encoding.UTF8).Where(l => l.Length > 0).ToList();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return new List<string>();
            }
        }
    }
}
