*** Settings ***
Documentation     hello_world on microbit under emulation.
Resource          hello_world.resource
Suite Setup       Build Hello World For microbit
Test Teardown     Reset Emulation


*** Test Cases ***
Boots And Prints The Ready Banner
    Banner Names microbit

Seven Inferences Equal TFLM
    Seven Inferences On microbit Equal TFLM
