#Requires -Version 7.4
<#
.SYNOPSIS
    Finds, by booting under QEMU, the least guest memory at which archives of several kinds still
    boot to their workload: the measurements the memory preflight (Boot/MemoryModel.cs) is fitted to.

.DESCRIPTION
    Builds the images (busybox alone; Debian minbase; a synthetic image of few large files; one of
    many small files), exports each as .cpio.zst and as .cpio, and for each archive bisects the
    memory (in MiB) between a size that fails and one that boots, with Start-InitramfsVM on the
    given machine. "Boots" means the workload printed its marker. Prints a table and writes JSON
    (the archive's entries, cpio bytes, file bytes rounded to pages, compressed bytes, the least
    memory that booted and the most that did not, and how the failing one ended).

    Not part of the tests: one run takes 10 to 30 minutes under TCG. docs/design-notes.md holds the
    last results ("Memory preflight").

.EXAMPLE
    dotnet pwsh tools/bench/Measure-BootMemory.ps1 -ModulePath out/InitramfsPS/InitramfsPS.psd1 -OutFile out/boot-memory.json
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string] $ModulePath,
    [string] $OutFile,
    [ValidateSet('microvm', 'q35')][string] $Machine = 'microvm',
    [string[]] $Case = @('busybox', 'debian', 'bulk', 'many', 'empty'),
    # Bisection stops when the interval is this narrow (MiB).
    [int] $Resolution = 8
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Case = @($Case -split ',' | ForEach-Object Trim | Where-Object { $_ })  # `pwsh -File` hands a list as one string
$root = (Resolve-Path "$PSScriptRoot/../..").Path
Import-Module $ModulePath -Force
Import-Module "$root/tests/Pester/TestHelpers.psm1" -Force
Import-Module "$root/tests/Pester/DebianImage.psm1" -Force

$work = Join-Path $root 'out/boot-memory'
$null = New-Item -ItemType Directory -Force $work
$env:INITRAMFSPS_CACHE = Join-Path $work 'cache'
$marker = @('/bin/sh', '-c', 'echo BOOT-MEMORY-OK')

function New-Synthetic([string] $Name, [int] $Entries, [long] $Bytes) {
    $tar = Join-Path $work "$Name.tar"
    if (-not (Test-Path $tar)) { python3 "$root/tools/bench/New-SyntheticTar.py" $tar $Entries $Bytes | Out-Null }
    $busybox = New-BusyboxLayer
    (New-TestOciLayout -Path (Join-Path $work $Name) -Layer $busybox, $tar -Tag t -Config @{ Cmd = $marker; Env = @('PATH=/bin') }).Reference
}

$references = [ordered]@{}
foreach ($c in $Case) {
    $references[$c] = switch ($c) {
        'busybox' { (New-TestOciLayout -Path (Join-Path $work busybox) -Layer @(, (New-BusyboxLayer)) -Tag t -Config @{ Cmd = $marker; Env = @('PATH=/bin') }).Reference }
        'debian' { (Get-DebianMinbaseLayout -Cmd $marker).Reference }
        'bulk' { New-Synthetic bulk 300 (150MB) }      # few large files: bytes dominate
        'many' { New-Synthetic many 40000 (20MB) }     # many small files: a page and an inode each
        'empty' { New-Synthetic empty 60000 0 }        # empty files: inodes without pages
    }
}

# Boots at $Mib: $true when the marker came, else how it ended.
function Test-Boot([string] $Archive, [int] $Mib) {
    $r = Start-InitramfsVM -Path $Archive -Machine $Machine -Memory ($Mib * 1MB) -Until '^BOOT-MEMORY-OK' -Timeout 900
    # The workload can start from a truncated rootfs (Debian's shell and libc come before
    # /usr/share); a boot counts only when the whole archive was unpacked.
    if ($r.Matched -and $r.Console -notmatch 'Initramfs unpacking failed') { return $true }
    # A boot that ran out of time says nothing about memory: stop rather than bisect on it.
    if ($r.TimedOut) { throw "$Archive at $Mib MiB timed out after $($r.Duration): the machine is too busy to measure." }
    $why = if ($r.Console -match 'Initramfs unpacking failed: [^\n]*') { $Matches[0] } elseif ($r.Panicked) { $r.PanicLine } else { $r.Outcome }
    return $why
}

$results = foreach ($name in $references.Keys) {
    # The generated /init prints the marker: the synthetic tar's own /init is an interactive shell.
    $rootfs = Get-OciImage $references[$name] | Expand-OciLayers | Set-InitramfsInit
    $pages = ($rootfs.GetEntries() | Where-Object Type -EQ 'File' | ForEach-Object { [Math]::Ceiling($_.Size / 4096) * 4096 } | Measure-Object -Sum).Sum
    foreach ($ext in 'cpio.zst', 'cpio') {
        $archive = Join-Path $work "$name.$ext"
        $report = $rootfs | Export-Initramfs $archive -WarningAction SilentlyContinue
        # Start from a size that surely boots: twice the archive and the unpacked files, and 256 MiB.
        $hi = [int][Math]::Max(256, [Math]::Ceiling(($report.CompressedSize + 2 * $report.UncompressedSize) / 1MB) + 128)
        while ((Test-Boot $archive $hi) -ne $true) { $hi *= 2; if ($hi -gt 16384) { throw "$archive does not boot even with $hi MiB." } }
        $lo = 32; $loWhy = 'not tried'
        $first = Test-Boot $archive $lo
        if ($first -eq $true) { $hi = $lo } else { $loWhy = $first }
        while ($hi - $lo -gt $Resolution) {
            $mid = [int](($lo + $hi) / 2)
            $ok = Test-Boot $archive $mid
            if ($ok -eq $true) { $hi = $mid } else { $lo = $mid; $loWhy = $ok }
            Write-Host ("{0,-14} {1,5} MiB: {2}" -f "$name.$ext", $mid, $ok)
        }
        [pscustomobject]@{
            Archive         = "$name.$ext"
            Entries         = $report.EntryCount
            CpioBytes       = $report.UncompressedSize
            FilePageBytes   = [long]$pages
            CompressedBytes = $report.CompressedSize
            BootsAtMiB      = $hi
            FailsAtMiB      = $lo
            FailsWith       = "$loWhy"
        }
    }
}
$results | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
if ($OutFile) { $results | ConvertTo-Json | Set-Content -LiteralPath $OutFile }
