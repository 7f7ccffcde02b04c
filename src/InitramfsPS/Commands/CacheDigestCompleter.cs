using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Threading;
using InitramfsPS.Cache;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Completes the digests of the blobs in the cache (<c>Clear-OciCache -Digest sha256:ab&lt;Tab&gt;</c>, or
    /// just hex digits), each with a tooltip saying what the blob is, where the cache tells
    /// (<see cref="CacheInventory.DescribeBlobs"/>), and its size.
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
                var store = new BlobStore(BlobStore.DefaultCacheRoot());
                var blobs = CacheInventory.List(store, false, CancellationToken.None).Take(MaxBlobs).ToList();
                var matches = blobs.Where(b => b.Digest.ToString().StartsWith(word, StringComparison.OrdinalIgnoreCase)
                    || b.Digest.Hex.StartsWith(word, StringComparison.OrdinalIgnoreCase)).ToList();
                if (matches.Count == 0)
                {
                    return Array.Empty<CompletionResult>();
                }
                var what = CacheInventory.DescribeBlobs(store, blobs);
                return matches.Select(b =>
                {
                    string digest = b.Digest.ToString();
                    string description = what.TryGetValue(b.Digest, out string? w) ? w : "blob";
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
