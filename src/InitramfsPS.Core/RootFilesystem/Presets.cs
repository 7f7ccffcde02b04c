using System;
using System.Collections.Generic;
using System.Linq;

namespace InitramfsPS.RootFilesystem
{
    /// <summary>A named trim: what it removes and what it keeps.</summary>
    public sealed class TrimPreset
    {
        /// <summary>Creates a preset.</summary>
        public TrimPreset(string name, string description, string[] remove, string[] keep)
        {
            Name = name;
            Description = description;
            Remove = remove;
            Keep = keep;
        }

        /// <summary>The name used with -Preset.</summary>
        public string Name { get; }

        /// <summary>What it is for.</summary>
        public string Description { get; }

        /// <summary>Patterns (see <see cref="RootfsGlob"/>) of entries removed with everything below them.</summary>
        public IReadOnlyList<string> Remove { get; }

        /// <summary>Patterns of entries kept even though a Remove pattern matches them.</summary>
        public IReadOnlyList<string> Keep { get; }

        /// <inheritdoc/>
        public override string ToString() => $"{Name}: {string.Join(", ", Remove)}{(Keep.Count > 0 ? " (keeps " + string.Join(", ", Keep) + ")" : string.Empty)}";
    }

    /// <summary>
    /// The usual trims of a container image that boots as an initramfs: nothing here is read by
    /// programs at run time. The help of Remove-InitramfsItem lists the same patterns; a test holds
    /// the two together.
    /// </summary>
    internal static class TrimPresets
    {
        /// <summary>Every preset, by name.</summary>
        public static IReadOnlyList<TrimPreset> All { get; } = new[]
        {
            new TrimPreset("Docs", "Package documentation and info pages.",
                new[] { "/usr/share/doc", "/usr/local/share/doc", "/usr/share/info", "/usr/share/gtk-doc" }, Array.Empty<string>()),
            new TrimPreset("ManPages", "Manual pages.",
                new[] { "/usr/share/man", "/usr/local/share/man" }, Array.Empty<string>()),
            new TrimPreset("Locales", "Translations and compiled locales other than C and English.",
                new[] { "/usr/share/locale/*", "/usr/lib/locale/*", "/usr/share/i18n/locales/*" },
                new[] { "/usr/share/locale/locale.alias", "/usr/share/locale/C*", "/usr/share/locale/en", "/usr/share/locale/en_*", "/usr/share/locale/en@*",
                        "/usr/lib/locale/C*", "/usr/lib/locale/en_*", "/usr/share/i18n/locales/C", "/usr/share/i18n/locales/en_*", "/usr/share/i18n/locales/i18n*",
                        "/usr/share/i18n/locales/iso14651_t1*", "/usr/share/i18n/locales/translit_*" }),
            new TrimPreset("PackageCaches", "Package manager caches and downloaded package lists.",
                new[] { "/var/cache/apt/*", "/var/lib/apt/lists/*", "/var/cache/apk/*", "/var/cache/dnf/*", "/var/cache/yum/*", "/root/.cache/pip" },
                Array.Empty<string>()),
            new TrimPreset("PythonCache", "Compiled Python bytecode, which Python rebuilds or does without.",
                new[] { "/**/__pycache__", "/**/*.pyc", "/**/*.pyo" }, Array.Empty<string>()),
        };

        /// <summary>The names, for -Preset.</summary>
        public static IEnumerable<string> Names => All.Select(p => p.Name);

        /// <summary>The preset called <paramref name="name"/> (case-insensitive).</summary>
        public static TrimPreset Get(string name) =>
            All.First(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));

        /// <summary>The entries a preset removes from <paramref name="rootfs"/> (tops of subtrees only).</summary>
        public static IReadOnlyList<RootfsEntry> Select(Rootfs rootfs, TrimPreset preset)
        {
            var remove = preset.Remove.Select(p => new RootfsGlob(p)).ToList();
            var keep = preset.Keep.Select(p => new RootfsGlob(p)).ToList();
            var chosen = new List<RootfsEntry>();
            string? coveredBy = null;
            foreach (var e in rootfs.GetEntries())
            {
                // Parents come first: once a directory is chosen, its subtree goes with it.
                if (coveredBy is not null && e.Path.StartsWith(coveredBy + "/", StringComparison.Ordinal))
                {
                    continue;
                }
                coveredBy = null;
                if (remove.Any(g => g.IsMatch(e.Path)) && !keep.Any(g => g.IsMatch(e.Path)))
                {
                    chosen.Add(e);
                    coveredBy = e.Path;
                }
            }
            return chosen;
        }
    }
}
