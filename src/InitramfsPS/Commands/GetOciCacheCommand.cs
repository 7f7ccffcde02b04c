using System.Management.Automation;
using InitramfsPS.Cache;
using InitramfsPS.Layers;

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
            var store = new BlobStore(BlobStore.DefaultCacheRoot());
            WriteVerbose($"Cache: {store.Root}");
            Guard(store.Root, () =>
            {
                if (Summary)
                {
                    var limits = CacheLimits.FromEnvironment();
                    if (limits.Problem is { } problem)
                    {
                        WriteWarning(problem);
                    }
                    WriteObject(CacheInventory.Summarize(store, limits, CancellationToken));
                    return;
                }
                foreach (var blob in CacheInventory.List(store, Verify, CancellationToken, diffId => LayerIndex.TryRead(store, diffId) is not null))
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
