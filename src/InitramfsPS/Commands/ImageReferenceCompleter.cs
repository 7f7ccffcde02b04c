using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using InitramfsPS.Cache;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Completes image references: the registry references whose tags the cache recorded
    /// (<c>alp&lt;Tab&gt;</c> → <c>alpine:3.20</c>), <c>oci:&lt;dir&gt;</c> (directories, then the layout's
    /// tags after <c>oci:dir:</c>) and <c>docker-archive:&lt;file&gt;</c> (files, then the archive's names
    /// after <c>docker-archive:file:</c>). The listing is done by <see cref="InitramfsCache.ListReferences"/>,
    /// <see cref="Initramfs.ListLayoutTags"/> and <see cref="Initramfs.ListArchiveNames"/>, each bounded;
    /// anything that fails (a broken layout or archive) completes to nothing.
    /// </summary>
    public sealed class ImageReferenceCompleter : IArgumentCompleter
    {
        private const string Layout = "oci:";
        private const string Archive = "docker-archive:";
        private const string Docker = "docker://";
        private const int MaxResults = 1000;

        /// <inheritdoc/>
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            try
            {
                return Complete(wordToComplete).Take(MaxResults).ToList();
            }
#pragma warning disable CA1031 // A completer must never throw: whatever failed, there is nothing to offer.
            catch (Exception)
#pragma warning restore CA1031
            {
                return Array.Empty<CompletionResult>();
            }
        }

        private static IEnumerable<CompletionResult> Complete(string wordToComplete)
        {
            string word = CompletionText.Unquote(wordToComplete);
            if (word.StartsWith(Layout, StringComparison.Ordinal))
            {
                return LayoutTags(word[Layout.Length..], wordToComplete);
            }
            if (word.StartsWith(Archive, StringComparison.Ordinal))
            {
                return ArchiveNames(word[Archive.Length..], wordToComplete);
            }
            string scheme = word.StartsWith(Docker, StringComparison.Ordinal) ? Docker : string.Empty;
            var results = Cached(word[scheme.Length..], scheme, wordToComplete).ToList();
            if (word.Length > 0)
            {
                results.AddRange(new[] { Layout, Archive }
                    .Where(t => t.StartsWith(word, StringComparison.Ordinal))
                    .Select(t => CompletionText.Result(t, wordToComplete, t, CompletionResultType.ParameterValue, t == Layout ? "oci:<dir>[:<tag>]: an OCI image layout" : "docker-archive:<file>[:<name:tag>]: a docker save archive")));
            }
            return results;
        }

        private static IEnumerable<CompletionResult> LayoutTags(string rest, string wordToComplete)
        {
            int colon = rest.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                // A layout directory is complete as it is (the tag follows a ':'); any other ends in '/'.
                return CompletionText.HostEntries(Layout, rest, wordToComplete, files: false, isFinal: d => File.Exists(Path.Combine(d, "index.json")));
            }
            string directory = rest[..colon], prefix = rest[(colon + 1)..];
            if (CompletionText.ResolveHostPath(directory) is not { } full)
            {
                return Enumerable.Empty<CompletionResult>();
            }
            return Initramfs.ListLayoutTags(full)
                .Where(t => t.StartsWith(prefix, StringComparison.Ordinal))
                .Select(t => CompletionText.Result($"{Layout}{directory}:{t}", wordToComplete, t, CompletionResultType.ParameterValue, $"The image tagged '{t}' in the layout {full}"))
                .ToList();
        }

        private static IEnumerable<CompletionResult> ArchiveNames(string rest, string wordToComplete)
        {
            int colon = rest.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                return CompletionText.HostEntries(Archive, rest, wordToComplete, files: true, isFinal: _ => false);
            }
            string file = rest[..colon], prefix = rest[(colon + 1)..];
            if (CompletionText.ResolveHostPath(file) is not { } full || !File.Exists(full))
            {
                return Enumerable.Empty<CompletionResult>();
            }
            return Initramfs.ListArchiveNames(full)
                .Where(n => n.StartsWith(prefix, StringComparison.Ordinal))
                .Select(n => CompletionText.Result($"{Archive}{file}:{n}", wordToComplete, n, CompletionResultType.ParameterValue,
                    n.StartsWith('@') ? $"Image {n[1..]} (it has no name) of {full}" : $"The image named '{n}' in {full}"))
                .ToList();
        }

        /// <summary>
        /// Cached references whose familiar name (<c>alpine:3.20</c>) or full name
        /// (<c>docker.io/library/alpine:3.20</c>) starts with the word; then those whose repository's
        /// last component does (<c>busy</c> → <c>127.0.0.1:5000/library/busybox:1</c>).
        /// </summary>
        private static IEnumerable<CompletionResult> Cached(string word, string scheme, string wordToComplete)
        {
            IReadOnlyList<CachedReference> references;
            using (var cache = InitramfsCache.OpenForUpkeep())
            {
                references = cache.ListReferences();
            }
            var texts = new List<(string Text, CachedReference Reference)>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var r in references)
            {
                string? text = r.FamiliarName.StartsWith(word, StringComparison.OrdinalIgnoreCase) ? r.FamiliarName
                    : r.CanonicalName.StartsWith(word, StringComparison.OrdinalIgnoreCase) ? r.CanonicalName
                    : null;
                if (text is not null && seen.Add(text))
                {
                    texts.Add((text, r));
                }
            }
            if (word.Length > 0 && !word.Contains('/', StringComparison.Ordinal) && !word.Contains(':', StringComparison.Ordinal))
            {
                foreach (var r in references)
                {
                    string last = r.Repository[(r.Repository.LastIndexOf('/') + 1)..];
                    if (last.StartsWith(word, StringComparison.OrdinalIgnoreCase) && seen.Add(r.FamiliarName))
                    {
                        texts.Add((r.FamiliarName, r));
                    }
                }
            }
            return texts.Select(t => CompletionText.Result(scheme + t.Text, wordToComplete, t.Text, CompletionResultType.ParameterValue,
                $"{t.Reference.CanonicalName} was {t.Reference.Digest} when last pulled (in the cache)"));
        }
    }
}
