<#
.SYNOPSIS
Benchmarks Export-Initramfs against native compressors and the skopeo/umoci/cpio/zstd pipeline (tracker issue 6).
.DESCRIPTION
Called by `build.ps1 -Task Bench [-Quick]`. Builds (and caches under out/bench-cache) a Debian
minbase image and a synthetic image of about 1 GB in 100k entries, pushes them to a local
registry, then, per image and over -Runs runs (medians printed):
  - warm export (image cached, expanded once, the JIT warmed by two exports of each kind) to
    .cpio, .cpio.zst and .cpio.gz at default levels, each run timed right after `zstd -3 -T0` and
    `pigz -6` on the very bytes of the .cpio export, in the same process, so that both sides of a
    ratio see the same machine; the ratio is the median of the per-run ratios. The first
    `Get-OciImage | Export-Initramfs` to .cpio.zst of the process (cached image, the JIT still cold)
    is printed too;
  - end to end from the registry with an empty cache in a new pwsh process, its start included,
    against `skopeo copy` -> `umoci unpack` -> `find | cpio -o -H newc` -> `zstd -3 -T0`. pwsh is
    started as an installed pwsh starts ($PSHOME/pwsh); `dotnet pwsh` would add the local tool's
    shim, a .NET process of its own (about 0.3 s here) that no installed pwsh has. Each run starts
    after an untimed `sync`, so that no run pays for the writeback of the one before. Also
    printed: the same pull and export inside one session with the module loaded (what the prompt
    sees);
  - peak RSS (`/usr/bin/time -v`) of a pwsh process doing a warm export;
  - the bytes a second export of the unchanged image reads (/proc/self/io rchar) against the
    bytes of its decompressed layers.
Then PASS/FAIL per target. -Quick uses a small synthetic image only (no Debian, no mirror) and
one run; its verdicts are informative only. Not part of the Test task.

-VerifyCost measures only what checking contents at use costs (docs/design-notes.md, "Verified at
use"): in one process, warm exports of the Debian minbase image (the synthetic quick image with
-Quick) to .cpio.zst and .cpio with the checks on and off in turn (the order swapped every run),
after two warm-up exports of each; medians of the times, of the per-run ratios and of the CPU
time, the bytes hashed per export, and PASS/FAIL for the target: on / off <= 1.10 for .cpio.zst.
The checks are turned off through a private field of the module, which nothing else touches.

-Rebuild measures issue 16's targets, in a process per image: a rebuild at level 3 (the Debian
minbase image plus a 1 MiB agent A exported, then plus agent B: the second export timed) against
`zstd -3 -T0` on the whole cpio of the second, <= 0.25 x; the same at level 19 against
`zstd -19 -T0` (one run), <= 0.05 x; the synthetic 1 GB image with one file changed against
`zstd -3 -T0`, <= 0.1 x; and a first export with an empty part cache against one with
-NoPartCache, not slower (median ratio <= 1 + -Tolerance). Each run has agents of its own, so
every timed export is a real rebuild. The cold end-to-end target (>= 4 x skopeo+umoci+cpio+zstd)
is in the default mode's table.

-BaselineModulePath compares this module with another build of it (build.ps1 -Task Bench -Baseline
<git revision> builds one): per image, -Runs rounds in which each module in turn (the order
swapped every round) does, in a new pwsh process of its own, five warm exports to each of .cpio,
.cpio.zst and .cpio.gz (after two untimed exports of each), and three end-to-end pulls and .cpio.zst
exports from the local registry with an empty cache (process start included; their median). Printed: the
medians of each side, the median of the per-round ratios after / before, and PASS/FAIL for "not
slower": a median ratio at most 1 + -Tolerance (0.03 unless given; this machine's round-to-round
noise is larger than that, which is why rounds alternate and ratios are paired). A module with a
part cache (issue 16) exports with -NoPartCache here: the comparison is of the code, not the cache.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string] $ModulePath,
    [switch] $Quick,
    [int] $Runs = 5,
    [string] $CacheDirectory,
    [switch] $VerifyCost,
    [string] $BaselineModulePath,
    [double] $Tolerance = 0.03,
    [switch] $Rebuild
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$PSNativeCommandUseErrorActionPreference = $false
$repo = (Resolve-Path "$PSScriptRoot/../..").Path
if (-not $CacheDirectory) { $CacheDirectory = Join-Path $repo 'out/bench-cache' }
if ($Quick) { $Runs = 1 }
Import-Module (Join-Path $repo 'tests/Pester/RegistryHelpers.psm1') -Force
[void][IO.Directory]::CreateDirectory($CacheDirectory)
$work = Join-Path ([IO.Path]::GetTempPath()) "initramfsps-bench-$PID"
[void][IO.Directory]::CreateDirectory($work)

function Get-Median([double[]] $Values) {
    $s = @($Values | Sort-Object)
    if ($s.Count -eq 0) { return [double]::NaN }
    if ($s.Count % 2) { return $s[[int][Math]::Floor($s.Count / 2)] }
    ($s[$s.Count / 2 - 1] + $s[$s.Count / 2]) / 2
}

# Runs a command under /usr/bin/time -v; returns wall seconds, peak RSS (MB) and output.
function Invoke-Timed([string] $File, [string[]] $Arguments) {
    $timeLog = Join-Path $work "time-$([guid]::NewGuid().ToString('N')).txt"
    $out = & /usr/bin/time -v -o $timeLog $File @Arguments 2>&1
    $code = $LASTEXITCODE
    $t = Get-Content -Raw -LiteralPath $timeLog
    Remove-Item -LiteralPath $timeLog
    if ($code -ne 0) { throw "$File $($Arguments -join ' ') failed ($code):`n$($out -join "`n")" }
    $wall = if ($t -match 'Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):(\d+(?:\.\d+)?)') { [double]$Matches[1] * 3600 + [double]$Matches[2] * 60 + [double]$Matches[3] } else { [double]::NaN }
    $rss = if ($t -match 'Maximum resident set size \(kbytes\): (\d+)') { [double]$Matches[1] / 1024 } else { [double]::NaN }
    [pscustomobject]@{ Seconds = $wall; PeakMB = $rss; Output = ($out -join "`n") }
}

# The pwsh this script runs in, started directly as an installed pwsh is (see the description).
$pwshExe = Join-Path $PSHOME 'pwsh'
if (-not (Test-Path -LiteralPath $pwshExe)) { $pwshExe = (Get-Process -Id $PID).Path }
function Invoke-Pwsh([string] $Script, [hashtable] $Environment = @{}) {
    $path = Join-Path $work "child-$([guid]::NewGuid().ToString('N')).ps1"
    Set-Content -LiteralPath $path -Value $Script
    $saved = @{}
    foreach ($k in $Environment.Keys) { $saved[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $Environment[$k]) }
    Push-Location $repo
    try { Invoke-Timed $pwshExe @('-NoProfile', '-NonInteractive', '-File', $path) }
    finally {
        Pop-Location
        foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) }
    }
}

# The JSON object a child script printed last (its other output is the module's warnings and such).
function Read-ChildResult($Child) {
    ($Child.Output -split "`n" | Where-Object { $_.StartsWith('{') } | Select-Object -Last 1) | ConvertFrom-Json
}

function New-SyntheticLayout([string] $Name, [int] $Entries, [long] $Bytes) {
    $dir = Join-Path $CacheDirectory $Name
    $layout = Join-Path $dir 'layout'
    $tar = Join-Path $dir 'rootfs.tar'
    if (-not (Test-Path (Join-Path $dir 'done'))) {
        Remove-Item -LiteralPath $dir -Recurse -Force -ErrorAction SilentlyContinue
        [void][IO.Directory]::CreateDirectory($dir)
        Write-Host "    generating $Name ($Entries entries, $([Math]::Round($Bytes / 1MB)) MiB)"
        & python3 (Join-Path $PSScriptRoot 'New-SyntheticTar.py') $tar $Entries $Bytes | Out-Null
        if ($LASTEXITCODE) { throw 'New-SyntheticTar.py failed' }
        foreach ($a in @(@('init', '--layout', $layout), @('new', '--image', "${layout}:bench"), @('raw', 'add-layer', '--image', "${layout}:bench", $tar))) {
            & umoci @a
            if ($LASTEXITCODE) { throw "umoci $($a -join ' ') failed" }
        }
        Set-Content -LiteralPath (Join-Path $dir 'done') -Value ''
    }
    [pscustomobject]@{ Name = $Name; Path = $layout; Tag = 'bench'; Tar = $tar }
}

# Warm exports with the checks of contents at use on and off, in turn, in one process.
function Measure-VerifyCost($Image) {
    $cache = Join-Path $work "cache-verify-$($Image.Name)"
    $dir = Join-Path $work "verify-$($Image.Name)"
    [void][IO.Directory]::CreateDirectory($dir)
    $ref = "oci:$($Image.Path):$($Image.Tag)"
    $child = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
`$reader = ([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -eq 'InitramfsPS.Core' }).GetType('InitramfsPS.RootFilesystem.ContentReader', `$true)
`$verify = `$reader.GetField('verify', [Reflection.BindingFlags]'NonPublic,Static')
`$bytesHashed = `$reader.GetProperty('BytesHashed', [Reflection.BindingFlags]'Public,NonPublic,Static')
`$process = [Diagnostics.Process]::GetCurrentProcess()
`$r = Get-OciImage '$ref' | Expand-OciLayers
function Measure-Export([string] `$Extension, [bool] `$On) {
    `$verify.SetValue(`$null, `$On)
    `$hashed = `$bytesHashed.GetValue(`$null)
    `$process.Refresh(); `$cpu = `$process.TotalProcessorTime.TotalSeconds
    `$sw = [Diagnostics.Stopwatch]::StartNew()
    `$null = `$r | Export-Initramfs "$dir/export`$Extension" -Force -WarningAction SilentlyContinue
    `$wall = `$sw.Elapsed.TotalSeconds
    `$process.Refresh()
    `$verify.SetValue(`$null, `$true)
    @{ Wall = `$wall; Cpu = `$process.TotalProcessorTime.TotalSeconds - `$cpu; Hashed = `$bytesHashed.GetValue(`$null) - `$hashed }
}
`$t = @{}
foreach (`$x in '.cpio.zst', '.cpio') {
    foreach (`$i in 1..2) { foreach (`$on in `$true, `$false) { `$null = Measure-Export `$x `$on } }
    `$t[`$x] = @{ OnWall = @(); OffWall = @(); OnCpu = @(); OffCpu = @(); Hashed = @() }
    foreach (`$i in 1..$Runs) {
        # Swapped every run, so that neither side always follows the other.
        foreach (`$on in @(if (`$i % 2) { `$true, `$false } else { `$false, `$true })) {
            `$m = Measure-Export `$x `$on
            if (`$on) { `$t[`$x].OnWall += `$m.Wall; `$t[`$x].OnCpu += `$m.Cpu; `$t[`$x].Hashed += `$m.Hashed }
            else { `$t[`$x].OffWall += `$m.Wall; `$t[`$x].OffCpu += `$m.Cpu }
        }
    }
}
`$tar = (Get-ChildItem '$cache/blobs/sha256' | Measure-Object Length -Maximum).Maximum
@{ Times = `$t; Tar = `$tar } | ConvertTo-Json -Compress -Depth 5
"@
    $data = Read-ChildResult (Invoke-Pwsh $child @{ INITRAMFSPS_CACHE = $cache })
    foreach ($x in '.cpio.zst', '.cpio') {
        $t = $data.Times.$x
        $ratios = for ($i = 0; $i -lt $Runs; $i++) { $t.OnWall[$i] / $t.OffWall[$i] }
        $on = Get-Median $t.OnWall; $off = Get-Median $t.OffWall
        [pscustomobject]@{
            Image = $Image.Name; Export = $x
            'checks on (s)' = '{0:N3}' -f $on; 'off (s)' = '{0:N3}' -f $off
            'ratio of medians' = '{0:N3}' -f ($on / $off); 'median per-run ratio' = '{0:N3}' -f (Get-Median $ratios)
            'CPU on / off (s)' = '{0:N3} / {1:N3}' -f (Get-Median $t.OnCpu), (Get-Median $t.OffCpu)
            'hashed per export (MB)' = '{0:N1} (tar {1:N1})' -f ((Get-Median $t.Hashed) / 1MB), ($data.Tar / 1MB)
            'all runs on / off (s)' = (($t.OnWall | ForEach-Object { '{0:N3}' -f $_ }) -join ' ') + ' / ' + (($t.OffWall | ForEach-Object { '{0:N3}' -f $_ }) -join ' ')
            Ratio = Get-Median $ratios
        }
    }
}

# One round of the comparison for one module: warm exports in a new process, then end to end.
# Both sides export without a part cache where the module has one (-NoPartCache, issue 16): a
# repeated export copies its parts from that cache, and a first one pays for keeping them, so
# with it the rows would measure the cache rather than the code being compared.
function Measure-Round([string] $Side, [string] $Module, $Image, [string] $Ref, [string] $Dir) {
    $noPartCache = "if ((Get-Command Export-Initramfs).Parameters.ContainsKey('NoPartCache')) { `$PSDefaultParameterValues['Export-Initramfs:NoPartCache'] = `$true }"
    $cache = Join-Path $work "cache-compare-$($Image.Name)-$Side"
    $child = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$Module'
$noPartCache
`$r = Get-OciImage 'oci:$($Image.Path):$($Image.Tag)' | Expand-OciLayers
foreach (`$i in 1..2) { foreach (`$x in '.cpio.zst', '.cpio.gz', '.cpio') { `$null = `$r | Export-Initramfs "$Dir/warm`$x" -Force -WarningAction SilentlyContinue } }
`$t = @{ '.cpio' = @(); '.cpio.zst' = @(); '.cpio.gz' = @() }
foreach (`$i in 1..5) {
    foreach (`$x in '.cpio', '.cpio.zst', '.cpio.gz') {
        `$sw = [Diagnostics.Stopwatch]::StartNew()
        `$null = `$r | Export-Initramfs "$Dir/warm`$x" -Force -WarningAction SilentlyContinue
        `$t[`$x] += `$sw.Elapsed.TotalSeconds
    }
}
# The median of five per kind: one export right after the warm-up still meets code the JIT is
# promoting, which moved single figures by 5% either way.
`$m = [ordered]@{}
foreach (`$x in `$t.Keys) { `$m[`$x] = (`$t[`$x] | Sort-Object)[2] }
`$m | ConvertTo-Json -Compress
"@
    $warm = Read-ChildResult (Invoke-Pwsh $child @{ INITRAMFSPS_CACHE = $cache })
    # End to end: the median of three new processes. One apiece moved the synthetic image's
    # per-round ratio by up to 10% either way (the disk's writeback of the previous run's 1 GB
    # cache lands on whichever run comes next, `sync` or not).
    $fresh = Join-Path $work 'fresh-compare'
    $runs = foreach ($k in 1..3) {
        & sync
        (Invoke-Pwsh "Import-Module '$Module'; $noPartCache; `$null = Get-OciImage '$Ref' | Export-Initramfs '$Dir/e2e.cpio.zst' -Force -WarningAction SilentlyContinue" @{ INITRAMFSPS_CACHE = $fresh }).Seconds
        Remove-Item -LiteralPath $fresh -Recurse -Force -ErrorAction SilentlyContinue
    }
    $e2e = Get-Median $runs
    [ordered]@{ 'warm .cpio' = $warm.'.cpio'; 'warm .cpio.zst' = $warm.'.cpio.zst'; 'warm .cpio.gz' = $warm.'.cpio.gz'; 'end to end .cpio.zst, new pwsh, empty cache' = $e2e }
}

# Issue 16: rebuilds against native zstd on the whole cpio, and the first export's cost, per image.
function Measure-Rebuild($Image, [int] $Level, [int] $Count, [string] $Changed) {
    $cache = Join-Path $work "cache-rebuild-$($Image.Name)-$Level"
    $dir = Join-Path $work "rebuild-$($Image.Name)-$Level"
    [void][IO.Directory]::CreateDirectory($dir)
    $child = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
`$r = Get-OciImage 'oci:$($Image.Path):$($Image.Tag)' | Expand-OciLayers
function New-Agent([int] `$Seed) {
    `$bytes = [byte[]]::new(1MB); [Random]::new(`$Seed).NextBytes(`$bytes)
    `$path = "$dir/agent-`$Seed"; [IO.File]::WriteAllBytes(`$path, `$bytes); `$path
}
function Time([scriptblock] `$Block) { `$sw = [Diagnostics.Stopwatch]::StartNew(); `$null = & `$Block; `$sw.Elapsed.TotalSeconds }
`$p = @{ CompressionLevel = $Level; WarningAction = 'SilentlyContinue'; Force = `$true }
`$t = @{ Rebuild = @(); Native = @(); Compressed = @(); Parts = @(); First = @(); NoCache = @() }
foreach (`$i in 1..$Count) {
    `$a = `$r | Add-InitramfsFile (New-Agent (2 * `$i)) '$Changed'
    `$b = `$r | Add-InitramfsFile (New-Agent (2 * `$i + 1)) '$Changed'
    if (`$i -eq 1 -and $Level -eq 3) {
        # An export with an empty part cache against one with -NoPartCache
        # (the order swapped every other time), a GC before each.
        foreach (`$j in 1..4) {
            [GC]::Collect(); [GC]::WaitForPendingFinalizers()
            if (`$j % 2) { `$t.NoCache += Time { `$a | Export-Initramfs "$dir/nocache.cpio.zst" -NoPartCache @p } }
            `$d = @(Get-OciCache | Where-Object Kind -EQ CompressedPart | ForEach-Object Digest); if (`$d) { Clear-OciCache -Digest `$d -Confirm:`$false }
            Remove-Item '$cache/part-recipes' -Recurse -Force -ErrorAction SilentlyContinue
            [GC]::Collect(); [GC]::WaitForPendingFinalizers()
            `$t.First += Time { `$a | Export-Initramfs "$dir/first.cpio.zst" @p }
            if (-not (`$j % 2)) { [GC]::Collect(); [GC]::WaitForPendingFinalizers(); `$t.NoCache += Time { `$a | Export-Initramfs "$dir/nocache.cpio.zst" -NoPartCache @p } }
        }
    }
    `$null = `$a | Export-Initramfs "$dir/a.cpio.zst" @p
    `$sw = [Diagnostics.Stopwatch]::StartNew()
    `$report = `$b | Export-Initramfs "$dir/b.cpio.zst" @p
    `$t.Rebuild += `$sw.Elapsed.TotalSeconds
    `$t.Compressed += `$report.PartsCompressed; `$t.Parts += `$report.PartCount
    `$null = `$b | Export-Initramfs "$dir/b.cpio" -WarningAction SilentlyContinue -Force
    `$t.Native += Time { & zstd -q -f -T0 -$Level "$dir/b.cpio" -o "$dir/native.zst"; if (`$LASTEXITCODE) { throw 'zstd failed' } }
}
`$t | ConvertTo-Json -Compress
"@
    $data = Read-ChildResult (Invoke-Pwsh $child @{ INITRAMFSPS_CACHE = $cache })
    $ratios = for ($i = 0; $i -lt $Count; $i++) { $data.Rebuild[$i] / $data.Native[$i] }
    [pscustomobject]@{
        Image = $Image.Name; Level = $Level
        Rebuild = Get-Median $data.Rebuild; Native = Get-Median $data.Native; Ratio = Get-Median $ratios
        Parts = '{0} of {1}' -f (Get-Median $data.Compressed), (Get-Median $data.Parts)
        First = if ($data.First) { Get-Median $data.First } else { $null }
        NoCache = if ($data.NoCache) { Get-Median $data.NoCache } else { $null }
        FirstRuns = if ($data.First) { (($data.First | ForEach-Object { '{0:N3}' -f $_ }) -join ' ') + ' / ' + (($data.NoCache | ForEach-Object { '{0:N3}' -f $_ }) -join ' ') } else { $null }
    }
}

if ($Rebuild) {
    Write-Host "==> Rebuilds (issue 16), $Runs runs (level 19: one)"
    $deb = if ($Quick) { New-SyntheticLayout 'synthetic-quick' 5000 (50MB) }
    else {
        Import-Module (Join-Path $repo 'tests/Pester/DebianImage.psm1') -Force
        $l = Get-DebianMinbaseLayout
        [pscustomobject]@{ Name = 'debian-minbase'; Path = $l.Path; Tag = $l.Tag }
    }
    $rows = @()
    try {
        $rows += Measure-Rebuild $deb 3 $Runs '/usr/local/bin/agent'
        $rows += Measure-Rebuild $deb 19 1 '/usr/local/bin/agent'
        if (-not $Quick) { $rows += Measure-Rebuild (New-SyntheticLayout 'synthetic-1g' 100000 (1GB)) 3 $Runs '/srv/agent' }
    }
    finally { Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue }
    $targets = @{ '3' = 0.25; '19' = 0.05 }
    $verdicts = foreach ($r in $rows) {
        $limit = if ($r.Image -like 'synthetic*' -and -not $Quick) { 0.1 } else { $targets["$($r.Level)"] }
        [pscustomobject]@{ Image = $r.Image; Target = "rebuild at level $($r.Level) <= $limit x zstd -$($r.Level) -T0 on the whole cpio"; Value = '{0:N3}s / {1:N3}s = {2:N3}x ({3} parts compressed)' -f $r.Rebuild, $r.Native, $r.Ratio, $r.Parts; Pass = $r.Ratio -le $limit }
        if ($r.First) {
            $fr = $r.First / $r.NoCache
            [pscustomobject]@{ Image = $r.Image; Target = "first export, empty part cache, not slower than -NoPartCache (<= $(1 + $Tolerance) x)"; Value = '{0:N3}s / {1:N3}s = {2:N3}x (runs {3})' -f $r.First, $r.NoCache, $fr, $r.FirstRuns; Pass = $fr -le 1 + $Tolerance }
        }
    }
    $verdicts | ForEach-Object { $_ | Add-Member -PassThru NoteProperty Result $(if ($_.Pass) { 'PASS' } else { 'FAIL' }) } |
        Format-Table Image, Result, Target, Value -AutoSize -Wrap | Out-String -Width 220 | Write-Host
    if ($Quick) { Write-Host '(quick mode: a small image; the verdicts are informative only)' }
    return
}

if ($BaselineModulePath) {
    Write-Host "==> This module ($ModulePath) against the baseline ($BaselineModulePath), $Runs rounds"
    $images = if ($Quick) { @(New-SyntheticLayout 'synthetic-quick' 5000 (50MB)) }
    else {
        Import-Module (Join-Path $repo 'tests/Pester/DebianImage.psm1') -Force
        $deb = Get-DebianMinbaseLayout
        @([pscustomobject]@{ Name = 'debian-minbase'; Path = $deb.Path; Tag = $deb.Tag }, (New-SyntheticLayout 'synthetic-1g' 100000 (1GB)))
    }
    $registry = Start-TestRegistry -Directory (Join-Path $work 'registry')
    $rows = [Collections.Generic.List[object]]::new()
    try {
        foreach ($img in $images) {
            $ref = (Push-TestImage -Layout $img.Path -Tag $img.Tag -Registry $registry.Url -Repository "bench/$($img.Name)").Reference
            $dir = Join-Path $work "compare-$($img.Name)"
            [void][IO.Directory]::CreateDirectory($dir)
            $before = @(); $after = @()
            foreach ($i in 1..$Runs) {
                # The order swaps every round, so that neither side always runs on a machine the other warmed.
                if ($i % 2) {
                    $before += Measure-Round before $BaselineModulePath $img $ref $dir
                    $after += Measure-Round after $ModulePath $img $ref $dir
                }
                else {
                    $after += Measure-Round after $ModulePath $img $ref $dir
                    $before += Measure-Round before $BaselineModulePath $img $ref $dir
                }
                Write-Host "    $($img.Name) round $i done"
            }
            foreach ($name in $before[0].Keys) {
                $b = @($before | ForEach-Object { $_[$name] }); $a = @($after | ForEach-Object { $_[$name] })
                $ratio = Get-Median @(for ($i = 0; $i -lt $Runs; $i++) { $a[$i] / $b[$i] })
                $rows.Add([pscustomobject]@{
                    Image = $img.Name; Measure = $name
                    'before (s)' = '{0:N3}' -f (Get-Median $b); 'after (s)' = '{0:N3}' -f (Get-Median $a)
                    'after / before' = '{0:N3}' -f $ratio
                    Result = if ($ratio -le 1 + $Tolerance) { 'PASS' } else { 'FAIL' }
                })
            }
        }
    }
    finally {
        Stop-TestRegistry $registry
        Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
    }
    Write-Host ("==> Not slower: median per-round ratio after / before <= {0:N2}" -f (1 + $Tolerance))
    $rows | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
    if ($Quick) { Write-Host '(quick mode: a small image; the verdicts are informative only)' }
    return
}

if ($VerifyCost) {
    Write-Host '==> Cost of the checks of contents at use'
    $image = if ($Quick) { New-SyntheticLayout 'synthetic-quick' 5000 (50MB) }
    else {
        Import-Module (Join-Path $repo 'tests/Pester/DebianImage.psm1') -Force
        $deb = Get-DebianMinbaseLayout
        [pscustomobject]@{ Name = 'debian-minbase'; Path = $deb.Path; Tag = $deb.Tag; Tar = $deb.Tar }
    }
    try { $rows = @(Measure-VerifyCost $image) }
    finally { Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue }
    $rows | Select-Object -ExcludeProperty Ratio | Format-List | Out-String -Width 200 | Write-Host
    $zst = $rows | Where-Object Export -EQ '.cpio.zst'
    $verdict = if ($zst.Ratio -le 1.10) { 'PASS' } else { 'FAIL' }
    Write-Host ('{0}  warm .cpio.zst export with the checks <= 1.10 x without (median per-run ratio {1:N3}, {2} runs)' -f $verdict, $zst.Ratio, $Runs)
    if ($Quick) { Write-Host '(quick mode: a small image; the verdict is informative only)' }
    return
}

$images = [Collections.Generic.List[object]]::new()
Write-Host '==> Images'
if ($Quick) {
    $images.Add((New-SyntheticLayout 'synthetic-quick' 5000 (50MB)))
}
else {
    Import-Module (Join-Path $repo 'tests/Pester/DebianImage.psm1') -Force
    $deb = Get-DebianMinbaseLayout
    $images.Add([pscustomobject]@{ Name = 'debian-minbase'; Path = $deb.Path; Tag = $deb.Tag; Tar = $deb.Tar })
    $images.Add((New-SyntheticLayout 'synthetic-1g' 100000 (1GB)))
}

Write-Host '==> Registry'
$registry = Start-TestRegistry -Directory (Join-Path $work 'registry')
$results = [Collections.Generic.List[object]]::new()
try {
    foreach ($img in $images) {
        $pushed = Push-TestImage -Layout $img.Path -Tag $img.Tag -Registry $registry.Url -Repository "bench/$($img.Name)"
        $ref = $pushed.Reference
        $layerBytes = (Get-Item -LiteralPath $img.Tar).Length
        Write-Host "==> $($img.Name): $ref, layer $([Math]::Round($layerBytes / 1MB)) MiB, $Runs runs"
        $cache = Join-Path $work "cache-$($img.Name)"
        $dir = Join-Path $work $img.Name
        [void][IO.Directory]::CreateDirectory($dir)

        # Warm export, in a process of its own, timed beside the native compressors; also the reads
        # of a second export and the first .cpio.zst export of a process.
        $child = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
function Measure-Native([string] `$Command) {
    `$sw = [Diagnostics.Stopwatch]::StartNew()
    & bash -c `$Command
    if (`$LASTEXITCODE) { throw "failed: `$Command" }
    `$sw.Elapsed.TotalSeconds
}
function Measure-Export([string] `$Path) {
    `$sw = [Diagnostics.Stopwatch]::StartNew()
    `$null = `$r | Export-Initramfs `$Path -Force -WarningAction SilentlyContinue
    `$sw.Elapsed.TotalSeconds
}
`$r = Get-OciImage '$ref' | Expand-OciLayers
`$null = `$r | Export-Initramfs '$dir/warm.cpio' -Force -WarningAction SilentlyContinue
function Get-Rchar { [long]((Get-Content /proc/self/io | Where-Object { `$_ -like 'rchar:*' } | Select-Object -First 1) -split '\s+')[1] }
`$before = Get-Rchar
`$sw = [Diagnostics.Stopwatch]::StartNew()
`$null = Get-OciImage '$ref' | Export-Initramfs '$dir/second.cpio.zst' -Force -WarningAction SilentlyContinue
`$coldZst = `$sw.Elapsed.TotalSeconds
`$second = (Get-Rchar) - `$before
foreach (`$i in 1..2) { foreach (`$x in '.cpio.zst', '.cpio.gz', '.cpio') { `$null = Measure-Export "$dir/ours`$x" } }
`$t = @{ cpio = @(); zst = @(); gz = @(); zstd = @(); pigz = @() }
foreach (`$i in 1..$Runs) {
    `$t.cpio += Measure-Export '$dir/ours.cpio'
    `$t.zstd += Measure-Native "zstd -3 -T0 -q -f '$dir/warm.cpio' -o '$dir/native.cpio.zst'"
    `$t.zst += Measure-Export '$dir/ours.cpio.zst'
    `$t.pigz += Measure-Native "pigz -6 -c '$dir/warm.cpio' > '$dir/native.cpio.gz'"
    `$t.gz += Measure-Export '$dir/ours.cpio.gz'
}
@{ Times = `$t; SecondReads = `$second; ColdZst = `$coldZst } | ConvertTo-Json -Compress -Depth 4
"@
        $warm = Invoke-Pwsh $child @{ INITRAMFSPS_CACHE = $cache }
        $data = Read-ChildResult $warm
        $cpioBytes = (Get-Item "$dir/warm.cpio").Length
        $zstRatios = for ($i = 0; $i -lt $Runs; $i++) { $data.Times.zst[$i] / $data.Times.zstd[$i] }
        $gzRatios = for ($i = 0; $i -lt $Runs; $i++) { $data.Times.gz[$i] / $data.Times.pigz[$i] }

        # Peak RSS of a warm export to .cpio.zst (module load and expansion from the cache included).
        $rssScript = "Import-Module '$ModulePath'; `$null = Get-OciImage '$ref' | Export-Initramfs '$dir/rss.cpio.zst' -Force -WarningAction SilentlyContinue"
        $rss = Invoke-Pwsh $rssScript @{ INITRAMFSPS_CACHE = $cache }

        # End to end with an empty cache: ours (process start included) and the peer pipeline, in turn.
        # Each starts after `sync`, untimed: the peer leaves ~170 MB of extracted files dirty, and
        # their writeback (and that of the deletes) otherwise lands on whichever run comes next.
        $e2e = @(); $peer = @()
        foreach ($i in 1..$Runs) {
            $fresh = Join-Path $work "fresh-$i"
            & sync
            $e2e += (Invoke-Pwsh "Import-Module '$ModulePath'; `$null = Get-OciImage '$ref' | Export-Initramfs '$dir/e2e.cpio.zst' -Force -WarningAction SilentlyContinue" @{ INITRAMFSPS_CACHE = $fresh }).Seconds
            Remove-Item -LiteralPath $fresh -Recurse -Force -ErrorAction SilentlyContinue
            $p = Join-Path $work "peer-$i"
            $cmd = "set -e; mkdir -p $p; skopeo copy -q --src-tls-verify=false docker://$ref oci:$p/oci:bench; umoci unpack --image $p/oci:bench $p/bundle >/dev/null; (cd $p/bundle/rootfs && find . | cpio -o -H newc --quiet) | zstd -3 -T0 -q > $dir/peer.cpio.zst"
            & sync
            $peer += (Invoke-Timed 'bash' @('-c', $cmd)).Seconds
            Remove-Item -LiteralPath $p -Recurse -Force -ErrorAction SilentlyContinue
        }
        & sync
        # The same inside one session (module loaded, a new cache each time; the first run has the JIT cold).
        $session = Invoke-Pwsh @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
`$times = foreach (`$i in 1..$Runs) {
    `$env:INITRAMFSPS_CACHE = '$work/session-' + `$i
    `$sw = [Diagnostics.Stopwatch]::StartNew()
    `$null = Get-OciImage '$ref' | Export-Initramfs '$dir/session.cpio.zst' -Force -WarningAction SilentlyContinue
    `$sw.Elapsed.TotalSeconds
    Remove-Item -LiteralPath `$env:INITRAMFSPS_CACHE -Recurse -Force
    & sync
}
@{ Times = @(`$times) } | ConvertTo-Json -Compress
"@
        $sessionTimes = @((Read-ChildResult $session).Times)

        $m = [ordered]@{
            Image = $img.Name; CpioMB = [Math]::Round($cpioBytes / 1MB, 1)
            ExportCpio = Get-Median $data.Times.cpio; ExportZst = Get-Median $data.Times.zst; ExportGz = Get-Median $data.Times.gz
            NativeZstd = Get-Median $data.Times.zstd; NativePigz = Get-Median $data.Times.pigz
            ZstRatio = Get-Median $zstRatios; GzRatio = Get-Median $gzRatios; FirstZstInProcess = [Math]::Round($data.ColdZst, 3)
            EndToEnd = Get-Median $e2e; Peer = Get-Median $peer
            InSession = Get-Median $sessionTimes; InSessionFirst = [Math]::Round($sessionTimes[0], 3)
            PeakRssMB = [Math]::Round($rss.PeakMB); SecondReadMB = [Math]::Round($data.SecondReads / 1MB, 1); LayerMB = [Math]::Round($layerBytes / 1MB, 1)
            ZstSizeMB = [Math]::Round((Get-Item "$dir/ours.cpio.zst").Length / 1MB, 1); NativeZstSizeMB = [Math]::Round((Get-Item "$dir/native.cpio.zst").Length / 1MB, 1)
            GzSizeMB = [Math]::Round((Get-Item "$dir/ours.cpio.gz").Length / 1MB, 1); PigzSizeMB = [Math]::Round((Get-Item "$dir/native.cpio.gz").Length / 1MB, 1)
        }
        $results.Add([pscustomobject]$m)
        [pscustomobject]$m | Format-List | Out-String | Write-Host
    }
}
finally {
    Stop-TestRegistry $registry
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}

Write-Host '==> Targets (issue 6)'
# The issue sets the warm-export targets for the Debian minbase image; the synthetic image's warm
# ratios are printed below, without a verdict.
$verdicts = foreach ($r in $results) {
    $er = $r.Peer / $r.EndToEnd
    if ($r.Image -notlike 'synthetic*' -or $Quick) {
        [pscustomobject]@{ Image = $r.Image; Target = 'warm .cpio.zst <= 1.15 x zstd -3 -T0'; Value = '{0:N3}s / {1:N3}s, median ratio {2:N2}x' -f $r.ExportZst, $r.NativeZstd, $r.ZstRatio; Pass = $r.ZstRatio -le 1.15 }
        [pscustomobject]@{ Image = $r.Image; Target = 'warm .cpio.gz <= pigz -6'; Value = '{0:N3}s / {1:N3}s, median ratio {2:N2}x' -f $r.ExportGz, $r.NativePigz, $r.GzRatio; Pass = $r.GzRatio -le 1.0 }
    }
    [pscustomobject]@{ Image = $r.Image; Target = 'end to end, new pwsh process (its start included) >= 3 x faster than skopeo+umoci+cpio+zstd'; Value = '{0:N2}s vs {1:N2}s = {2:N2}x faster' -f $r.EndToEnd, $r.Peer, $er; Pass = $er -ge 3 }
    $sr = $r.Peer / $r.InSessionFirst
    [pscustomobject]@{ Image = $r.Image; Target = 'end to end, first run in a pwsh session (module loaded, JIT cold) >= 3 x faster than the same'; Value = '{0:N2}s vs {1:N2}s = {2:N2}x faster' -f $r.InSessionFirst, $r.Peer, $sr; Pass = $sr -ge 3 }
    [pscustomobject]@{ Image = $r.Image; Target = 'second export reads each layer byte at most once'; Value = "$($r.SecondReadMB) MB read, layers $($r.LayerMB) MB"; Pass = $r.SecondReadMB -le $r.LayerMB }
    if ($r.Image -like 'synthetic*') {
        [pscustomobject]@{ Image = $r.Image; Target = 'peak RSS < 256 MB'; Value = "$($r.PeakRssMB) MB"; Pass = $r.PeakRssMB -lt 256 }
    }
}
$verdicts | ForEach-Object { $_ | Add-Member -PassThru NoteProperty Result $(if ($_.Pass) { 'PASS' } else { 'FAIL' }) } |
    Format-Table Image, Result, Target, Value -AutoSize -Wrap | Out-String -Width 200 | Write-Host
Write-Host '==> Also measured (no target)'
$results | ForEach-Object {
    [pscustomobject]@{
        Image                      = $_.Image
        'warm .zst / .gz vs native (median per-run ratios)' = '{0:N2}x / {1:N2}x' -f $_.ZstRatio, $_.GzRatio
        'first cached Get-OciImage | Export-Initramfs .zst in a process' = '{0:N2}s (warm export alone: {1:N2}s; the JIT still cold)' -f $_.FirstZstInProcess, $_.ExportZst
        'end to end in a session, all runs' = '{0:N2}s median ({1:N1}x faster than the peer)' -f $_.InSession, ($_.Peer / $_.InSession)
        'zst / gz size vs native'  = '{0} / {1} MB vs {2} / {3} MB' -f $_.ZstSizeMB, $_.GzSizeMB, $_.NativeZstSizeMB, $_.PigzSizeMB
    }
} | Format-List | Out-String -Width 200 | Write-Host
if ($Quick) { Write-Host '(quick mode: a small image and one run; the verdicts are informative only)' }
