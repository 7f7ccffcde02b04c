# The default views (InitramfsPS.Format.ps1xml) at 80 columns (a default terminal, CI logs) and
# at 160: every output type renders with ids, digests, sizes and paths whole, and no line is wider
# than the width asked for.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    # Short paths of our own (not under $TestDrive), so that the image references fit a line.
    $script:work = New-TestDirectory -Temp -Prefix views
    $env:INITRAMFSPS_CACHE = Join-Path $work cache
    $script:widths = 80, 160

    # 71 characters: wider than any table column at 80 columns.
    $script:longFile = '/usr/lib/python3.12/site-packages/some-long-package/submodule/module.py'
    $script:longTarget = '/usr/lib/python3.12/site-packages/some-long-package/submodule/target'
    # 66 characters: the path of a finding, which a list shows whole on one line at 80 columns.
    $script:longCommand = '/opt/example-vendor/long-application-dir/bin/agent-with-long-names'

    function script:New-Image([string] $Name, [int] $LongFileSize) {
        $tar = New-TestTar -Entry @(
            @{ Name = 'bin/'; Type = 'Dir' },
            @{ Name = 'bin/sh'; Data = 'a shell'; Mode = '0755' },
            @{ Name = 'bin/link-with-a-long-target'; Type = 'Symlink'; LinkName = $longTarget },
            @{ Name = 'init'; Data = "#!/bin/sh`n"; Mode = '0755' },
            @{ Name = $longFile.TrimStart('/'); Data = 'x' * $LongFileSize }
        )
        $layout = New-TestOciLayout -Path (Join-Path $work $Name) -Layer @(, $tar) -Tag $Name -Config @{ Cmd = @('/bin/sh', '-c', 'echo hello') }
        Get-OciImage $layout.Reference
    }

    # Two images whose one difference is 1234567 against 1234569 bytes: both 1.2 MB.
    $script:image = New-Image a 1234567
    $script:other = New-Image b 1234569
    $script:rootfs = $image | Expand-OciLayers

    # A 170.4 MB file, sparse: big sizes without writing them.
    $script:big = Join-Path $work big.bin
    $fs = [System.IO.File]::Create($big)
    try { $fs.SetLength(170400000) } finally { $fs.Dispose() }
    $script:bigRootfs = $other | Add-InitramfsFile $big /opt/big.bin -Mode 0644

    # The same bytes as a cache blob, under their real digest.
    $fs = [System.IO.File]::OpenRead($big)
    try { $hex = [System.Convert]::ToHexString([System.Security.Cryptography.SHA256]::HashData($fs)).ToLowerInvariant() }
    finally { $fs.Dispose() }
    $script:bigDigest = "sha256:$hex"
    $blobDir = Join-Path $env:INITRAMFSPS_CACHE blobs/sha256
    $null = New-Item -ItemType Directory -Force $blobDir
    $fs = [System.IO.File]::Create((Join-Path $blobDir $hex))
    try { $fs.SetLength(170400000) } finally { $fs.Dispose() }

    function script:Show([object[]] $InputObject, [int] $Width) {
        $InputObject | Out-String -Width $Width
    }

    function script:Assert-Fits([string] $Text, [int] $Width) {
        foreach ($line in $Text -split '\r?\n') {
            $line.Length | Should -BeLessOrEqual $Width -Because "no line is wider than $Width columns: '$line'"
        }
        $Text | Should -Not -Match '…' -Because 'nothing is cut off'
    }

    # The cells of a left-aligned table column rendered -Width columns wide, each wrapped cell
    # joined back into one string. A row starts where the first column has text; its other lines
    # continue the wrapped cells. PowerShell wraps a cell every column-width characters and drops
    # the spaces at the end of a line, so every piece but the last is padded back to that width.
    function script:Get-TableColumn([string] $Text, [string] $Label, [int] $Width) {
        $lines = $Text -split '\r?\n'
        for ($h = 0; $h -lt $lines.Count - 1; $h++) {
            if ($lines[$h + 1] -match '^[- ]+$' -and $lines[$h] -match "(^| )$([regex]::Escape($Label))( |$)") { break }
        }
        $runs = [regex]::Matches($lines[$h + 1], '-+')
        $index = @(0..($runs.Count - 1) | Where-Object { $lines[$h].Substring($runs[$_].Index).StartsWith($Label) })[0]
        $start = $runs[$index].Index
        $columnWidth = if ($index -lt $runs.Count - 1) { $runs[$index + 1].Index - 1 - $start } else { $Width - $start }
        $firstWidth = $runs[1].Index - 1
        $rows = [System.Collections.Generic.List[object]]::new()
        foreach ($line in $lines[($h + 2)..($lines.Count - 1)]) {
            if ($line.Trim() -eq '') { break }
            if ($line.Substring(0, [Math]::Min($firstWidth, $line.Length)).Trim() -ne '') {
                $rows.Add([System.Collections.Generic.List[string]]::new())
            }
            $rows[-1].Add($(if ($line.Length -gt $start) { $line.Substring($start, [Math]::Min($columnWidth, $line.Length - $start)) } else { '' }))
        }
        foreach ($pieces in $rows) {
            while ($pieces.Count -gt 1 -and $pieces[-1] -eq '') { $pieces.RemoveAt($pieces.Count - 1) }
            $full = @(for ($i = 0; $i -lt $pieces.Count - 1; $i++) { $pieces[$i].PadRight($columnWidth) }) + $pieces[-1]
            ($full -join '').TrimEnd()
        }
    }

    # The values of a list item rendered -Width columns wide, each wrapped value joined back into
    # one string (pieces padded back to the width, as in Get-TableColumn).
    function script:Get-ListValue([string] $Text, [string] $Label, [int] $Width) {
        $lines = $Text -split '\r?\n'
        $values = [System.Collections.Generic.List[string]]::new()
        for ($i = 0; $i -lt $lines.Count; $i++) {
            if ($lines[$i] -notmatch "^$([regex]::Escape($Label)) *: ") { continue }
            $start = $Matches[0].Length
            $value = $lines[$i].Substring($start)
            while ($i + 1 -lt $lines.Count -and $lines[$i + 1].Length -gt $start -and $lines[$i + 1].Substring(0, $start).Trim() -eq '') {
                $i++
                $value = $value.PadRight($Width - $start) + $lines[$i].Substring($start)
            }
            $values.Add($value.TrimEnd())
        }
        $values.ToArray()
    }

    # The lines holding a text whole.
    function script:Get-LinesWith([string] $Text, [string] $Value) {
        @($Text -split '\r?\n' | Where-Object { $_.Contains($Value) })
    }
}

AfterAll {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'Sizes for people' {
    It 'never takes more than 8 characters, so a size column of 8 holds every value' {
        $values = 0L, 999L, 1000L, 999949L, 999950L, 1234567L, 170400000L, 999949999L, 999950000L, 1023900000L,
            999949999999L, 999950000000000000L, [long]::MaxValue
        foreach ($v in $values) {
            [InitramfsPS.IO.Units]::Bytes($v).Length | Should -BeLessOrEqual 8 -Because "$v is $([InitramfsPS.IO.Units]::Bytes($v))"
        }
        [InitramfsPS.IO.Units]::Bytes(170400000) | Should -Be '170.4 MB'
        [InitramfsPS.IO.Units]::Bytes(999950) | Should -Be '1 MB' -Because 'a value that rounds to 1000 takes the next unit'
        [InitramfsPS.IO.Units]::Bytes(999949) | Should -Be '999.9 KB'
    }

    It 'gives exact bytes for two sizes that round alike' {
        $pair = [InitramfsPS.IO.Units]::BytesPair(1234567, 1234569)
        $pair.Item1 | Should -Be '1234567 B'
        $pair.Item2 | Should -Be '1234569 B'
        $pair = [InitramfsPS.IO.Units]::BytesPair(1234567, 1334567)
        $pair.Item1, $pair.Item2 | Should -Be @('1.2 MB', '1.3 MB')
    }
}

Describe 'Default views at 80 and 160 columns' {
    It 'has a view for every output type of every cmdlet, and for Digest' {
        $types = Get-Command -Module InitramfsPS | ForEach-Object { $_.OutputType.Type } |
            Where-Object { $_ -and $_ -ne [void] } | ForEach-Object FullName | Sort-Object -Unique
        $types | Should -Contain 'InitramfsPS.RootFilesystem.Rootfs'
        foreach ($type in @($types) + 'InitramfsPS.Images.Digest', 'InitramfsPS.Images.LayerDescriptor') {
            Get-FormatData -TypeName $type | Should -Not -BeNullOrEmpty -Because "$type needs a view"
        }
    }

    It 'prints a Digest as its text, sha256 and the hex digits, on its own and as a property' {
        $blob = Get-OciCache | Where-Object { "$($_.Digest)" -eq $bigDigest }
        foreach ($digest in $image.Digest, $image.ConfigDigest, $image.Layers[0].Digest, $image.Layers[0].DiffId, $blob.Digest) {
            $digest.ToString() | Should -Match '^sha256:[0-9a-f]{64}$'
            foreach ($w in $widths) {
                $text = $digest | Out-String -Width $w
                @($text -split '\r?\n' | Where-Object { $_.Trim() }) | Should -Be @($digest.ToString())
            }
        }
        foreach ($w in $widths) {
            $text = @($image.Layers.Digest) + $other.Digest | Out-String -Width $w
            @($text -split '\r?\n' | Where-Object { $_.Trim() }) | Should -Be @("$($image.Layers[0].Digest)", "$($other.Digest)")
            # Format-List of a type without a list view shows the digest as text, not as a type name.
            $list = $blob | Format-List Digest, Size | Out-String -Width $w
            Get-ListValue $list Digest $w | Should -Be @($bigDigest)
        }
    }

    It 'shows an OciImage with its whole digest, platform, layers, size and command' {
        foreach ($w in $widths) {
            $text = Show $image, $other $w
            Assert-Fits $text $w
            foreach ($i in $image, $other) {
                Get-LinesWith $text $i.Reference.ToString() | Should -HaveCount 1
                Get-LinesWith $text $i.Digest.ToString() | Should -HaveCount 1
                Get-LinesWith $text ('    linux/amd64, 1 layer, {0}' -f [InitramfsPS.IO.Units]::Bytes($i.Size)) | Should -Not -BeNullOrEmpty
            }
            Get-LinesWith $text 'Command: /bin/sh -c echo hello' | Should -HaveCount 2
        }
    }

    It 'shows the layers of an image with their whole digests, diff_ids and sizes' {
        $layer = $image.Layers[0]
        foreach ($w in $widths) {
            $text = Show $image.Layers $w
            Assert-Fits $text $w
            Get-ListValue $text Index $w | Should -Be @('1')
            Get-ListValue $text Digest $w | Should -Be @($layer.Digest.ToString())
            Get-ListValue $text DiffId $w | Should -Be @($layer.DiffId.ToString())
            Get-ListValue $text Size $w | Should -Be @(('{0} ({1} bytes), Gzip' -f [InitramfsPS.IO.Units]::Bytes($layer.Size), $layer.Size))
        }
    }

    It 'shows a Rootfs with its whole source, size, /init and changes' {
        $bigRootfs.Size | Should -BeGreaterThan 170400000
        foreach ($w in $widths) {
            $text = Show $bigRootfs $w
            Assert-Fits $text $w
            Get-ListValue $text Source $w | Should -Be @($other.Reference.ToString())
            Get-ListValue $text Entries $w | Should -Be @("$($bigRootfs.Count)")
            Get-ListValue $text Size $w | Should -Be @(('{0} ({1} bytes)' -f [InitramfsPS.IO.Units]::Bytes($bigRootfs.Size), $bigRootfs.Size))
            Get-ListValue $text Init $w | Should -Be @('-rwxr-xr-x 0:0 10 B')
            Get-ListValue $text Changes $w | Should -Be @($bigRootfs.Changes)
        }
    }

    It 'lists entries with whole paths, link targets and sizes' {
        $entries = @($bigRootfs | Get-InitramfsItem -Recurse)
        $expected = $entries | ForEach-Object { if ($_.Type -eq 'Symlink') { "$($_.Path) -> $($_.LinkTarget)" } else { $_.Path } }
        $expected | Should -Contain $longFile
        $expected | Should -Contain "/bin/link-with-a-long-target -> $longTarget"
        foreach ($w in $widths) {
            $text = Show $entries $w
            Assert-Fits $text $w
            Get-TableColumn $text Path $w | Should -Be $expected
            Get-LinesWith $text ' 170400000 ' | Should -HaveCount 1
            Get-LinesWith $text ' 1234569 ' | Should -HaveCount 1
        }
    }

    It 'shows an export report with the whole path, sha256 and sizes' {
        $report = $rootfs | Export-Initramfs (Join-Path $work 'an-archive-with-a-rather-long-file-name.cpio.gz')
        foreach ($w in $widths) {
            $text = Show $report $w
            Assert-Fits $text $w
            Get-ListValue $text Path $w | Should -Be @($report.Path)
            Get-LinesWith $text $report.Sha256 | Should -HaveCount 1
            Get-ListValue $text Sha256 $w | Should -Be @($report.Sha256)
            Get-ListValue $text Uncompressed $w | Should -Be @(('{0} ({1} bytes)' -f [InitramfsPS.IO.Units]::Bytes($report.UncompressedSize), $report.UncompressedSize))
            Get-ListValue $text AddedEntries $w | Should -Be @($report.AddedEntries -join ', ')
        }
    }

    It 'lists cache blobs with whole digests and sizes such as 170.4 MB' {
        $blobs = @(Get-OciCache -Verify)
        $blobs.Count | Should -BeGreaterThan 1
        foreach ($w in $widths) {
            $text = Show $blobs $w
            Assert-Fits $text $w
            foreach ($blob in $blobs) {
                $line = @(Get-LinesWith $text $blob.Digest.ToString())
                $line | Should -HaveCount 1
                $line[0] | Should -Match " $([regex]::Escape([InitramfsPS.IO.Units]::Bytes($blob.Size)))( |$)"
            }
            Get-LinesWith $text "$bigDigest 170.4 MB" | Should -HaveCount 1
        }
        (Show $blobs 160) | Should -Match '170\.4 MB \d{4}-\d\d-\d\d \d\d:\d\d True'
    }

    It 'shows findings with whole ids, paths and messages, on lines as wide as the width' {
        $longCommand.Length | Should -Be 66
        $findings = @($rootfs | Set-InitramfsInit -Command $longCommand | Test-Initramfs)
        $findings.Id | Should -Contain 'WorkloadMissing'
        foreach ($w in $widths) {
            $text = Show $findings $w
            Assert-Fits $text $w
            Get-ListValue $text Id $w | Should -Be $findings.Id
            Get-ListValue $text Message $w | Should -Be $findings.Message
            Get-LinesWith $text $longCommand | Should -Not -BeNullOrEmpty -Because 'the path is whole on one line'
            Get-ListValue $text Path $w | Should -Be $findings.Path
            foreach ($f in $findings) {
                # a message is not squeezed into a narrow column: its first 60 characters share a line
                Get-LinesWith $text $f.Message.Substring(0, [Math]::Min(60, $f.Message.Length)) | Should -HaveCount 1
            }
        }
    }

    It 'shows differences with whole paths, and exact bytes where the sizes round alike' {
        $diff = @(Compare-Initramfs $rootfs $bigRootfs)
        ($diff | Where-Object Path -EQ $longFile).Fields | Should -Be 'Size'
        foreach ($w in $widths) {
            $text = Show $diff $w
            Assert-Fits $text $w
            Get-TableColumn $text Path $w | Should -Be $diff.Path
            Get-TableColumn $text Change $w | Should -Be @($diff.Change | ForEach-Object ToString)
            $detail = Get-TableColumn $text Detail $w
            $detail | Should -Contain 'Size: 1234567 B -> 1234569 B'
            $detail | Should -Contain '-rw-r--r-- 0:0 170.4 MB'
        }
    }
}
