# Get-OciCache and Clear-OciCache on a cache the tests fill themselves (a docker archive import
# copies every member into the cache by digest).

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory
    $env:INITRAMFSPS_CACHE = Join-Path $work cache

    function script:Fill-Cache {
        $archive = Join-Path $work "saved-$([guid]::NewGuid()).tar"
        $tar = New-TestTar -Entry @(@{ Name = 'init'; Data = "#!/init`n$([guid]::NewGuid())"; Mode = '0755' })
        New-TestDockerArchive -Path $archive -Layer @(, $tar) | Out-Null
        Get-OciImage "docker-archive:$archive"
    }
}

AfterAll {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'Get-OciCache' {
    It 'lists each cached blob with its digest and size, and -Verify finds a damaged one' {
        $image = Fill-Cache
        $blobs = @(Get-OciCache)
        $blobs.Digest.ForEach({ $_.ToString() }) | Should -Contain $image.Layers[0].Digest.ToString()
        $layer = $blobs | Where-Object { $_.Digest.ToString() -eq $image.Layers[0].Digest.ToString() }
        $layer.Size | Should -Be (Get-Item $layer.Path).Length
        (Get-OciCache -Verify | Where-Object Valid -NE $true) | Should -BeNullOrEmpty

        $bytes = [IO.File]::ReadAllBytes($layer.Path); $bytes[100] = $bytes[100] -bxor 1; [IO.File]::WriteAllBytes($layer.Path, $bytes)
        $bad = @(Get-OciCache -Verify -WarningAction SilentlyContinue | Where-Object Valid -EQ $false)
        $bad.Count | Should -Be 1
        $bad[0].Digest.ToString() | Should -Be $image.Layers[0].Digest.ToString()
    }
}

Describe 'Clear-OciCache' {
    It 'removes only the blobs piped to it' {
        Clear-OciCache
        $image = Fill-Cache
        $count = @(Get-OciCache).Count
        Get-OciCache | Where-Object { $_.Digest.ToString() -eq $image.Layers[0].Digest.ToString() } | Clear-OciCache
        @(Get-OciCache).Count | Should -Be ($count - 1)
        Test-Path (Join-Path $env:INITRAMFSPS_CACHE "blobs/sha256/$($image.Layers[0].Digest.Hex)") | Should -BeFalse
    }

    It 'removes nothing when the pipeline delivers nothing' {
        Fill-Cache | Out-Null
        $count = @(Get-OciCache).Count
        $count | Should -BeGreaterThan 0
        Get-OciCache -Verify | Where-Object Valid -EQ $false | Clear-OciCache
        @() | Clear-OciCache
        @(Get-OciCache).Count | Should -Be $count
    }

    It 'honours -WhatIf, and without arguments empties the cache' {
        Fill-Cache | Out-Null
        $count = @(Get-OciCache).Count
        Clear-OciCache -WhatIf
        @(Get-OciCache).Count | Should -Be $count
        Clear-OciCache
        @(Get-OciCache) | Should -BeNullOrEmpty
    }
}

Describe 'Temporary files a killed process left' {
    It 'are swept on the next cache write, while one a live writer holds is kept' {
        Fill-Cache | Out-Null
        $tmp = Join-Path $env:INITRAMFSPS_CACHE tmp
        $stale = Join-Path $tmp 'left-by-kill-9.partial'
        $live = Join-Path $tmp 'being-written.partial'
        Set-Content $stale 'half a blob'
        Set-Content $live 'another process is writing this'
        $held = [System.IO.File]::Open($live, 'Open', 'ReadWrite', 'None')
        try {
            Fill-Cache | Out-Null
            Test-Path $stale | Should -BeFalse
            Test-Path $live | Should -BeTrue
        }
        finally { $held.Dispose() }
        (Get-OciCache -Verify | Where-Object Valid -NE $true) | Should -BeNullOrEmpty
    }
}

