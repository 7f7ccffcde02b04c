using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.IO;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Completes the digests of the entries in the cache (<c>Clear-OciCache -Digest sha256:ab&lt;Tab&gt;</c>, or
    /// just hex digits), each with a tooltip saying what the entry is, where the cache tells
    /// (<see cref="CacheBlob.Description"/>), and its size.
    /// </summary>
    public sealed class CacheDigestCompleter : IArgumentCompleter
    {
        private const int MaxBlobs = 100_000;

        /// <inheritdoc/>
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            try
            {
                string word = CompletionText.Unquote(wordToComplete);
                using var cache = InitramfsCache.OpenForUpkeep();
                var matches = cache.List(false, CancellationToken.None).Take(MaxBlobs)
                    .Where(b => b.Digest.ToString().StartsWith(word, StringComparison.OrdinalIgnoreCase)
                        || b.Digest.Hex.StartsWith(word, StringComparison.OrdinalIgnoreCase))
                    .DistinctBy(b => b.Digest)
                    .ToList();
                return matches.Select(b =>
                {
                    string digest = b.Digest.ToString();
                    string description = b.Description ?? "blob";
                    return CompletionText.Result(digest, wordToComplete, digest, CompletionResultType.ParameterValue, $"{description}, {Units.Bytes(b.Size)}");
                }).ToList();
            }
#pragma warning disable CA1031 // A completer must never throw: whatever failed, there is nothing to offer.
            catch (Exception)
#pragma warning restore CA1031
            {
                return Array.Empty<CompletionResult>();
            }
        }
    }
}
