using System.Management.Automation;
using InitramfsPS.Cache;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Lists the entries of the local cache (what each is, which cached images use it, when it was
    /// last used), optionally re-hashing each; or, with -Summary, the cache as a whole against its budget.
    /// </summary>
    [Cmdlet(VerbsCommon.Get, "OciCache", DefaultParameterSetName = ListSet)]
    [OutputType(typeof(CacheBlob), ParameterSetName = new[] { ListSet })]
    [OutputType(typeof(CacheSummary), ParameterSetName = new[] { SummarySet })]
    public sealed class GetOciCacheCommand : InitramfsCmdlet
    {
        private const string ListSet = "List";
        private const string SummarySet = "Summary";

        /// <summary>Re-hash every blob and report whether it matches its digest.</summary>
        [Parameter(ParameterSetName = ListSet)]
        public SwitchParameter Verify { get; set; }

        /// <summary>One object for the whole cache: its size against its budget, and what no image uses.</summary>
        [Parameter(Mandatory = true, ParameterSetName = SummarySet)]
        public SwitchParameter Summary { get; set; }

        /// <inheritdoc/>
        protected override void EndProcessing()
        {
            using var cache = InitramfsCache.OpenForUpkeep();
            cache.Warning = WriteWarning;
            WriteVerbose($"Cache: {cache.Root}");
            Guard(cache.Root, () =>
            {
                if (Summary)
                {
                    WriteObject(cache.Summarize(CancellationToken));
                    return;
                }
                foreach (var blob in cache.List(Verify, CancellationToken))
                {
                    if (blob.Valid is false)
                    {
                        WriteWarning($"The cached blob {blob.Digest} does not match its digest; Clear-OciCache -Digest {blob.Digest} removes it.");
                    }
                    WriteObject(blob);
                }
            });
        }
    }
}
