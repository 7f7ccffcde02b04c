using System.Globalization;
using System.Linq;
using System.Management.Automation;
using InitramfsPS.Cache;
using InitramfsPS.Images;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Removes entries from the local cache: the ones named, the ones no cached image uses
    /// (-Unused), or everything. Entries a running command uses are kept.
    /// </summary>
    [Cmdlet(VerbsCommon.Clear, "OciCache", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = AllSet)]
    [OutputType(typeof(void))]
    public sealed class ClearOciCacheCommand : InitramfsCmdlet
    {
        private const string AllSet = "All";
        private const string DigestSet = "Digest";
        private const string UnusedSet = "Unused";

        /// <summary>Digests of the entries to remove (from Get-OciCache by property name).</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = DigestSet)]
        [ArgumentCompleter(typeof(CacheDigestCompleter))]
        [ValidateNotNullOrEmpty]
        public string[]? Digest { get; set; }

        /// <summary>Remove the entries no cached image uses, then evict down to the budget.</summary>
        [Parameter(Mandatory = true, ParameterSetName = UnusedSet)]
        public SwitchParameter Unused { get; set; }

        private readonly BlobStore store = new(BlobStore.DefaultCacheRoot());
        private bool any;

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            if (Digest is null)
            {
                return;
            }
            any = true;
            foreach (string text in Digest)
            {
                Guard(text, () =>
                {
                    var digest = Images.Digest.Parse(text);
                    if (!ShouldProcess($"{digest} in {store.Root}", "Remove cached entry"))
                    {
                        return;
                    }
                    switch (CacheInventory.Remove(store, digest))
                    {
                        case RemoveOutcome.NotFound:
                            WriteVerbose($"{digest} was not in the cache.");
                            break;
                        case RemoveOutcome.InUse:
                            WriteError(InUse(digest));
                            break;
                    }
                });
            }
        }

        /// <inheritdoc/>
        protected override void EndProcessing()
        {
            if (Unused)
            {
                RemoveUnused();
                return;
            }
            // Only a bare Clear-OciCache empties the cache: a pipeline that delivered no digests
            // (say, Get-OciCache -Verify filtered to corrupt blobs, and there were none) removes nothing.
            if (any || MyInvocation.ExpectingInput)
            {
                return;
            }
            Guard(store.Root, () =>
            {
                var entries = CacheInventory.List(store, false, CancellationToken).ToList();
                string what = string.Create(CultureInfo.InvariantCulture, $"Remove all {entries.Count} entries ({Units.Bytes(entries.Sum(b => b.Size))}) and tag records");
                if (!ShouldProcess(store.Root, what))
                {
                    return;
                }
                int kept = CacheInventory.Clear(store);
                if (kept > 0)
                {
                    WriteWarning($"{kept} {(kept == 1 ? "entry" : "entries")} of the cache stayed: running commands use them.");
                }
            });
        }

        private void RemoveUnused()
        {
            Guard(store.Root, () =>
            {
                var approved = CacheInventory.ListUnused(store, CancellationToken)
                    .Where(e => ShouldProcess($"{e.Digest} ({e.Kind}, {Units.Bytes(e.Size)}) in {store.Root}", "Remove cached entry no image uses"))
                    .ToList();
                foreach (var removed in CacheInventory.RemoveEntries(store, approved, CancellationToken))
                {
                    WriteVerbose($"Removed {removed.Digest} ({removed.Kind}, {Units.Bytes(removed.Size)}): no cached image uses it.");
                }
                if (!WhatIfWanted())
                {
                    EnforceBudget(store);
                }
            });
        }

        private bool WhatIfWanted() => MyInvocation.BoundParameters.TryGetValue("WhatIf", out object? whatIf)
            ? LanguagePrimitives.IsTrue(whatIf)
            : LanguagePrimitives.IsTrue(GetVariableValue("WhatIfPreference"));

        private static ErrorRecord InUse(Digest digest) => new(
            new System.InvalidOperationException($"{digest} is in use by a running command (of this or another process); it was kept. Remove it once that command has finished."),
            "CacheEntryInUse", ErrorCategory.ResourceBusy, digest.ToString());
    }
}
