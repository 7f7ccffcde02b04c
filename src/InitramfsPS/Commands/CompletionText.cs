using System;
using System.Collections.Generic;
using System.Management.Automation;

namespace InitramfsPS.Commands
{
    /// <summary>What the module's argument completers share: quoting results and resolving host paths as the cmdlets do.</summary>
    internal static class CompletionText
    {
        private static readonly System.Buffers.SearchValues<char> NeedsQuotes = System.Buffers.SearchValues.Create(" \t'\"$`;(){}|&<>,");

        /// <summary>The word being completed without the quote the user opened (and closed) it with.</summary>
        public static string Unquote(string wordToComplete)
        {
            string word = wordToComplete;
            if (word.Length > 0 && word[0] is '\'' or '"')
            {
                char quote = word[0];
                word = word[1..];
                if (word.Length > 0 && word[^1] == quote)
                {
                    word = word[..^1];
                }
            }
            return word;
        }

        /// <summary>
        /// <paramref name="text"/> as the command line needs it: in the quotes the user opened, else
        /// single-quoted when it holds a character PowerShell would read as syntax, else as it is.
        /// </summary>
        public static string Quote(string text, string wordToComplete)
        {
            if (wordToComplete.StartsWith('"'))
            {
                return "\"" + text.Replace("`", "``", StringComparison.Ordinal).Replace("\"", "`\"", StringComparison.Ordinal).Replace("$", "`$", StringComparison.Ordinal) + "\"";
            }
            if (wordToComplete.StartsWith('\'') || text.AsSpan().IndexOfAny(NeedsQuotes) >= 0 || text.StartsWith('@') || text.StartsWith('#'))
            {
                return "'" + text.Replace("'", "''", StringComparison.Ordinal) + "'";
            }
            return text;
        }

        /// <summary>A result whose completion text is <paramref name="text"/>, quoted as needed.</summary>
        public static CompletionResult Result(string text, string wordToComplete, string listItem, CompletionResultType type, string toolTip) =>
            new(Quote(text, wordToComplete), string.IsNullOrEmpty(listItem) ? text : listItem, type, string.IsNullOrEmpty(toolTip) ? text : toolTip);

        /// <summary>
        /// A host path as the cmdlets resolve it (relative to the current location, <c>~</c> expanded),
        /// or null when it cannot be.
        /// </summary>
        public static string? ResolveHostPath(string path)
        {
            try
            {
                // Completion runs inside a pipeline, where SessionStateProxy refuses calls; a script
                // block runs on this thread, in the prompt's session state.
                var result = ScriptBlock.Create("param($p) $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($p)")
                    .Invoke(path.Length == 0 ? "." : path);
                return result.Count == 1 ? result[0]?.BaseObject as string : null;
            }
            catch (RuntimeException)
            {
                return null;
            }
        }

        /// <summary>
        /// Entries of the host directory named by the part of <paramref name="partial"/> up to its last
        /// '/', whose names start with the rest, each as <paramref name="prefix"/> + the path as typed.
        /// Directories end in '/' unless <paramref name="isFinal"/> says they are complete as they are
        /// (an OCI layout); files are left out unless <paramref name="files"/>. Hidden entries only
        /// when the typed name starts with '.'; at most <paramref name="max"/> entries are looked at.
        /// </summary>
        public static IEnumerable<CompletionResult> HostEntries(string prefix, string partial, string wordToComplete, bool files, Func<string, bool> isFinal, int max = 10_000)
        {
            int slash = partial.LastIndexOf('/');
            string directoryPart = slash < 0 ? string.Empty : partial[..(slash + 1)];
            string name = partial[(slash + 1)..];
            if (ResolveHostPath(directoryPart) is not { } directory || !System.IO.Directory.Exists(directory))
            {
                yield break;
            }
            var found = new List<(string Name, bool IsDirectory, string FullName)>();
            int seen = 0;
            foreach (var entry in new System.IO.DirectoryInfo(directory).EnumerateFileSystemInfos())
            {
                if (++seen > max)
                {
                    break;
                }
                if (!entry.Name.StartsWith(name, StringComparison.Ordinal) || (entry.Name.StartsWith('.') && !name.StartsWith('.')))
                {
                    continue;
                }
                bool isDirectory = entry is System.IO.DirectoryInfo;
                if (isDirectory || files)
                {
                    found.Add((entry.Name, isDirectory, entry.FullName));
                }
            }
            found.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
            foreach (var (entryName, isDirectory, fullName) in found)
            {
                string text = prefix + directoryPart + entryName + (isDirectory && !isFinal(fullName) ? "/" : string.Empty);
                yield return Result(text, wordToComplete, entryName, isDirectory ? CompletionResultType.ProviderContainer : CompletionResultType.ProviderItem, fullName);
            }
        }
    }
}
